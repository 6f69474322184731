"""The dashboard at ``/`` in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
over the real API (uvicorn) on real Elasticsearch and Kafka, with fixture data in this test's own
namespace: the page fills its pickers and counts, draws its charts, shows an alert published to
the alerts topic without a reload, renders search highlights as <mark> and hostile mention text as
text (nothing runs), shows the triage queue, and breaks no rule of the API's Content-Security-Policy.

The browser comes from ``deploy/local/browser.sh`` (installs Debian's chromium once if missing);
Playwright never downloads one. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from pipeline.alerts.sink import AlertSink, ensure_alerts_layout
from pipeline.alerts.records import Alert, AlertMention, AlertTerm, AlertWindow, alert_id
from pipeline.schema import Author, EnrichedMention, Sentiment
from pipeline.settings import Settings
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client
from tests.conftest import create_api_key, isolated_env
from tests.integration.test_alerts_api import Publisher
from tests.servers import serve

pytestmark = [pytest.mark.services, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
# RECIPES.md: the flags that work on these machines (no GPU, no sandbox in containers, no phoning home).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
HOSTILE = '@united lost my luggage again <script>alert("xss")</script><img src=x onerror="alert(2)"> & "quotes"'
NEGATIVE_RGB = (217, 83, 79)  # COLORS.negative in app.js: the trend chart's negative bars
VOLUMES = {"united": 36, "delta": 18, "american": 9}  # mentions per brand in the last 18 hours


def sentiment(label: str) -> Sentiment:
    probs = {name: (0.8 if name == label else 0.1) for name in ("negative", "neutral", "positive")}
    return Sentiment(label=label, score=0.8, **probs)


def mentions(now: datetime) -> list[EnrichedMention]:
    rows = []
    for brand, count in VOLUMES.items():
        for i in range(count):
            at = now - timedelta(minutes=30 * i + 5)
            label = ("negative", "neutral", "positive")[i % 3]
            text = HOSTILE if (brand, i) == ("united", 0) else f"@{brand} flight {i}: luggage handling was {label}"
            rows.append(EnrichedMention(
                id=f"dash:{brand}:{i}", source="dashtest", text=text, lang="en", created_at=at, ingested_at=at,
                author=Author(handle=f"flyer{i}", followers=100 * i), sentiment=sentiment(label),
                model_version="test@1", brands=[brand], competitors=[] if brand == "united" else [brand],
                purposes=["customer_care"], teams=["customer_care"], priority=float(90 - i)))
    return rows


def alert(brand: str, signal: str, severity: str, started: datetime, text: str) -> dict:
    observed, expected = (0.6, 0.2) if signal == "negative" else (40.0, 5.0)  # negative: a share, 0..1
    return Alert(
        id=alert_id(brand, signal, started), brand=brand, signal=signal, severity=severity, status="open",
        started_at=started, updated_at=started + timedelta(minutes=5),
        window=AlertWindow(start=started, end=started + timedelta(minutes=5), bucket_s=300),
        observed=observed, expected=expected, score=6.0, peak_score=6.0, teams=["customer_care"],
        terms=[AlertTerm(term="luggage", score=12.0, spike_count=30, baseline_count=2)],
        mentions=[AlertMention(id=f"dash:{brand}:alert", text=text, created_at=started)],
    ).to_document()


async def load(settings: Settings, now: datetime, stored_alert: dict) -> None:
    es = make_es_client(settings)
    try:
        await ensure_mentions_layout(es, settings)
        assert await MentionSink(es, settings).write([(m.to_document(), m.created_at) for m in mentions(now)]) == []
        await es.indices.refresh(index=settings.mentions_alias)
        await ensure_alerts_layout(es, settings)
        await AlertSink(es, settings).write([stored_alert])
        await es.indices.refresh(index=settings.alerts_index)
    finally:
        await es.close()


def create_topic(settings: Settings) -> None:
    """The alerts topic before the API starts, so its live feed is assigned the partition at once."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(settings.topic_alerts, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of a Chromium binary (``deploy/local/browser.sh`` installs Debian's if missing)."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("the dashboard test needs the 'playwright' package (dev extras; requirements.lock)", pytrace=False)
    result = subprocess.run(["bash", str(REPO / "deploy/local/browser.sh")], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"no browser for the dashboard test:\n{result.stderr[-2000:]}", pytrace=False)
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def dash_settings(test_env) -> Settings:
    env = isolated_env(f"dash{uuid.uuid4().hex[:4]}")  # its own indices and topics, even when run twice in a session
    return Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})


def canvas_pixels(page, selector: str, rgb: tuple[int, int, int] | None = None) -> int:
    """Painted pixels of a canvas (alpha > 0), or those within 12 of ``rgb`` on each channel."""
    return page.evaluate(
        """([selector, rgb]) => {
             const canvas = document.querySelector(selector);
             const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
             let count = 0;
             for (let i = 0; i < pixels.length; i += 4) {
               if (pixels[i + 3] === 0) continue;
               if (!rgb || rgb.every((c, k) => Math.abs(pixels[i + k] - c) <= 12)) count++;
             }
             return count;
           }""", [selector, list(rgb) if rgb else None])


def test_dashboard_in_a_real_browser(chromium, dash_settings):
    from playwright.sync_api import sync_playwright

    from api.main import create_app

    settings = dash_settings
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stored = alert("united", "volume", "high", now - timedelta(hours=3), "@united queue at the desk is huge")
    live = alert("delta", "negative", "critical", now - timedelta(minutes=10),
                 'delta lost every bag <script>alert("live")</script>')
    asyncio.run(load(settings, now, stored))
    create_topic(settings)
    key = create_api_key(settings, "admin", name="dashboard-test")
    care_key = create_api_key(settings, "care", name="dashboard-test-care")  # no trends, no alerts
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs, errors, console = [], [], []
    started = time.monotonic()

    with serve(create_app(settings)) as base, sync_playwright() as pw:
        config = httpx.get(f"{base}/dashboard/config", headers={"Authorization": f"Bearer {key}"}).json()
        groups = {b["id"]: b["group"] for b in config["brands"]}  # competitors sit under the own brand above them
        assert groups["united"] == groups["delta"] == "united" and groups["google"] == groups["apple"] == "apple"
        assert "customer_care" in config["teams"]
        assert httpx.get(f"{base}/dashboard/config").status_code == 401
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)

            # The key comes in the URL fragment; the page keeps it in sessionStorage and drops the fragment.
            served = page.goto(f"{base}/#key={key}")
            assert "script-src 'self';" in served.headers["content-security-policy"]  # no inline script allowed
            page.wait_for_selector("body[data-ready=true]", timeout=20_000)
            assert "key=" not in page.url
            assert page.evaluate("sessionStorage.getItem('earshot.apiKey')") == key

            # Pickers from brands.yaml and routing.yaml; counts from the trend.
            brand_options = page.locator("#brand option")
            assert brand_options.count() >= len(VOLUMES) and page.input_value("#brand") == "united"
            assert page.locator("#team option").count() >= 2 and page.input_value("#team") == "customer_care"
            assert page.text_content("#stat-total") == str(VOLUMES["united"])
            assert page.text_content("#stat-negative") == "33.3 %"

            # The trend chart drew bars in the negative colour, as many as the trend has buckets with negatives.
            assert canvas_pixels(page, "#trend-chart", NEGATIVE_RGB) > 200
            datasets = page.evaluate("Chart.getChart('trend-chart').data.datasets.map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])")
            assert dict(datasets) == {"negative": 12, "neutral": 12, "positive": 12}

            # Share of voice: the default set is united and the airlines listed under it in brands.yaml.
            page.wait_for_selector("#sov-table:not([hidden]) #sov-rows tr", timeout=10_000)
            rows = page.locator("#sov-rows tr").all_inner_texts()
            assert len(rows) == 7, rows
            for brand, volume in VOLUMES.items():
                assert any(r.split("\t")[1] == str(volume) for r in rows if r.lower().startswith(brand[:4])), rows
            assert canvas_pixels(page, "#sov-chart") > 500

            # Alerts: the stored one is listed; a new one published to the topic appears with no reload.
            assert page.locator(f"li.alert[data-alert-id='{stored['id']}']").count() == 1
            page.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
            page.evaluate("window.__notReloaded = true")
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            publisher = Publisher(settings, [live])  # round after round, until the page shows it
            publisher.start()
            try:
                page.wait_for_selector(f"li.alert.live[data-alert-id='{live['id']}']", timeout=30_000)
            finally:
                publisher.stop.set()
                publisher.join(10)
            arrived = page.locator(f"li.alert[data-alert-id='{live['id']}']")
            assert arrived.count() == 1 and "new" in arrived.inner_text() and "critical" in arrived.inner_text()
            assert '<script>alert("live")</script>' in arrived.inner_text()
            assert page.evaluate("window.__notReloaded") is True
            assert page.text_content("#stat-alerts") == "2"

            # Search: highlights as <mark>; the hostile mention shown as its text, no element made of it.
            page.fill("#search-q", "luggage")
            page.click("#search-form button[type=submit]")
            page.wait_for_selector("#search-results li mark", timeout=10_000)
            results = page.locator("#search-results li")
            assert results.count() == 20 and page.locator("#search-results mark").count() >= 20
            assert all(m.lower() == "luggage" for m in page.locator("#search-results mark").all_inner_texts())
            hostile = page.locator("#search-results li[data-mention-id='dash:united:0'] .item-text")
            assert hostile.inner_text() == HOSTILE
            assert page.locator("#search-results script, #search-results img, #alerts-list script").count() == 0
            page.screenshot(path=str(ARTIFACTS / "dashboard-search.png"), full_page=True)

            # Defence in depth: were the API's escaping ever lost, a highlight with live markup still shows as text.
            unescaped = '<mark>lost</mark> <img src=x onerror="alert(3)"><b>bold</b> &amp; <mark>bag</mark>'
            page.route("**/v1/mentions/search?*", lambda route: route.fulfill(json={
                "total": 1, "next_cursor": None, "hits": [{**mentions(now)[0].to_document(), "highlight": unescaped}]}))
            page.fill("#search-q", "lost bag")
            page.click("#search-form button[type=submit]")
            page.wait_for_selector("#search-note:text('1 mention')", timeout=10_000)
            page.unroute("**/v1/mentions/search?*")
            assert page.locator("#search-results mark").all_inner_texts() == ["lost", "bag"]
            assert page.locator("#search-results img, #search-results b").count() == 0
            assert page.inner_text("#search-results .item-text") == 'lost <img src=x onerror="alert(3)"><b>bold</b> & bag'

            # The customer care queue: routed mentions, most urgent first, none touched yet.
            page.wait_for_selector("#triage-list li", timeout=10_000)
            assert page.locator("#triage-list li").count() == 20
            assert page.locator("#triage-list li .badge").first.inner_text() == "new · priority 90"
            assert HOSTILE in page.locator("#triage-list").inner_text()
            assert page.locator("#triage-list script, #triage-list img").count() == 0

            # A narrower role sees what it may read and is told what it may not.
            page.evaluate(f"sessionStorage.setItem('earshot.apiKey', '{care_key}')")
            page.reload()
            page.wait_for_selector("body[data-ready=true]", timeout=20_000)
            page.wait_for_selector("#live-status[data-state=denied]", timeout=10_000)
            assert "needs trends:read" in page.text_content("#trend-note")
            assert "needs alerts:read" in page.text_content("#alerts-note")
            # ...and opens on its own workspace (tests/e2e/test_dashboard_workspaces.py), the others not offered.
            page.wait_for_selector("#view-care:not([hidden]) #care-list li", timeout=10_000)
            assert not page.is_visible("#view-comms") and not page.is_visible("#tab-comms")

            # A wrong key sends the user back to the key form with the API's reason.
            page.evaluate("sessionStorage.setItem('earshot.apiKey', 'esk_0000000000000000_" + "x" * 43 + "')")
            page.reload()
            page.wait_for_selector("#key-panel:not([hidden])", timeout=10_000)
            assert "unknown API key" in page.text_content("#key-message")
        finally:
            browser.close()

    assert dialogs == [], f"a script from the data ran: {dialogs}"
    assert errors == [], errors
    csp = [c for c in console if "Content Security Policy" in c]
    assert csp == [], csp
    print(f"dashboard test: {time.monotonic() - started:.1f} s with the API and the browser")
