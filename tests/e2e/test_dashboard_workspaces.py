"""The dashboard's workspaces in a real headless Chromium over the real API, Elasticsearch and Kafka:
each team's main action, done as a person would, and what a role may not see.

- Crisis room: an incident acknowledged in one browser changes in a second one (the SSE stream).
- Care: assign to me, mark responded with the reply link, resolve, hand over; the KPIs move.
- Data: a CSV download whose rows are the API's NDJSON feed rows.
- Admin: a query edit with a syntax error shown at its position, then a valid live preview; a key made
  for a team and revoked.
- A team-bound care key sees its workspace only.
Screenshots of each view at 1280x800 (and the care view at phone width) go to ``tests/artifacts/``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from api.auth.keys import create_key
from api.triage_store import ensure_triage_layout
from pipeline.store.mention_sink import make_es_client
from tests.conftest import create_api_key
from tests.e2e.test_dashboard import (ARTIFACTS, CHROMIUM_ARGS, alert, chromium, create_topic,  # noqa: F401 - fixtures
                                      dash_settings, load)
from tests.servers import serve

pytestmark = [pytest.mark.services, pytest.mark.e2e]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def bound_key(settings, role: str, teams: list[str], name: str) -> str:
    async def create() -> str:
        es = make_es_client(settings)
        try:
            return (await create_key(es, settings, role, name, datetime.now(timezone.utc), teams=teams))[1].text
        finally:
            await es.close()

    return asyncio.run(create())


async def triage_index(settings) -> None:
    es = make_es_client(settings)
    try:
        await ensure_triage_layout(es, settings)
    finally:
        await es.close()


@pytest.fixture(scope="module")
def site(chromium, dash_settings):  # noqa: F811 - the fixture imported above
    from playwright.sync_api import sync_playwright

    from api.main import create_app

    settings = dash_settings
    now = datetime.now(timezone.utc).replace(microsecond=0)
    incident = alert("united", "volume", "critical", now - timedelta(hours=1), "@united the whole terminal is stuck")
    asyncio.run(load(settings, now, incident))
    asyncio.run(triage_index(settings))  # made here, so that the first page load does not wait for a new index
    create_topic(settings)
    keys = {role: create_api_key(settings, role, name=f"ws-{role}") for role in ("admin", "crisis", "data")}
    keys["care"] = bound_key(settings, "care", ["customer_care"], "ws-care")
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(create_app(settings)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        problems: list[str] = []

        def open_view(key: str, view: str, viewport=DESKTOP, context=None):
            context = context or browser.new_context(viewport=viewport, accept_downloads=True)
            page = context.new_page()
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(f"{base}/?view={view}#key={key}")
            page.wait_for_selector("body[data-ready=true]", timeout=40_000)
            page.wait_for_selector(f"#view-{view}:not([hidden])", timeout=10_000)
            return page

        try:
            yield {"base": base, "keys": keys, "open": open_view, "incident": incident, "settings": settings}
        finally:
            browser.close()
        assert problems == [], problems


def test_crisis_room_ack_shows_in_a_second_browser_at_once(site):
    incident = site["incident"]
    first, second = site["open"](site["keys"]["crisis"], "crisis"), site["open"](site["keys"]["crisis"], "crisis")
    selector = f"#crisis-list li[data-alert-id='{incident['id']}']"
    for page in (first, second):
        page.wait_for_selector(selector, timeout=10_000)
        page.wait_for_selector("#live-status[data-state=live]", timeout=15_000)
    assert "the whole terminal is stuck" in first.inner_text(selector)
    assert first.locator(f"{selector} .badge.critical").count() == 1
    first.screenshot(path=str(ARTIFACTS / "workspace-crisis.png"), full_page=True)
    first.fill(f"{selector} textarea", "comms briefed, statement at 14:00")
    first.click(f"{selector} button.ack")
    first.wait_for_selector(f"{selector}[data-status=acknowledged]", timeout=10_000)
    # The other viewer sees it through the stream, no reload.
    second.evaluate("window.__notReloaded = true")
    second.wait_for_selector(f"{selector}[data-status=acknowledged]", timeout=30_000)
    assert "acknowledged by ws-crisis" in second.inner_text(selector)
    assert "comms briefed, statement at 14:00" in second.inner_text(selector)
    assert second.evaluate("window.__notReloaded") is True
    # Resolving takes it out of the open list for both.
    first.click(f"{selector} button.resolve")
    second.wait_for_selector(selector, state="detached", timeout=30_000)
    assert "No open incidents" in second.text_content("#crisis-note")
    stored = httpx.get(f"{site['base']}/v1/alerts/{incident['id']}",
                       headers={"Authorization": f"Bearer {site['keys']['crisis']}"}).json()
    assert stored["status"] == "resolved" and stored["acknowledged_by"] == "ws-crisis"


def kpi(page, name: str) -> str:
    return page.text_content(f"#kpi-{name}")


def wait_until(page, check, timeout_s: float = 20) -> None:
    """Poll ``check(page)`` from here: Playwright's wait_for_function evaluates strings, which the CSP forbids."""
    deadline = time.monotonic() + timeout_s
    while not check(page):
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(200)


def test_care_assign_respond_resolve_and_hand_over_move_the_kpis(site):
    page = site["open"](site["keys"]["care"], "care")
    page.wait_for_selector("#care-list li.queue-item", timeout=10_000)
    wait_until(page, lambda p: kpi(p, "backlog") != "–")
    # A team-bound care key: its workspace only, its team only.
    assert [t for t in ("crisis", "comms", "care", "ir", "data", "admin") if page.is_visible(f"#tab-{t}")] == ["care"]
    assert page.locator("#care-team option").all_inner_texts() == ["customer care"]
    status = page.evaluate("""async () => (await fetch('/v1/triage/investor_relations/queue',
        {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('earshot.apiKey')}})).status""")
    assert status == 403
    backlog, responded = int(kpi(page, "backlog")), kpi(page, "responded")
    assert backlog >= 20 and responded.startswith("0 / ")
    page.screenshot(path=str(ARTIFACTS / "workspace-care.png"), full_page=False)

    first = page.locator("#care-list li.queue-item").first
    mention_id = first.get_attribute("data-mention-id")
    item = f"#care-list li[data-mention-id='{mention_id}']"
    assert "SLA" in page.inner_text(f"{item} .badge.sla") and "priority 90" in page.inner_text(item)
    page.click(f"{item} button.assign")
    page.wait_for_selector(f"{item}[data-status=assigned]", timeout=10_000)
    assert "assigned · ws-care" in page.inner_text(item)
    page.fill(f"{item} input.reply-url", "https://example.org/replies/1")
    page.click(f"{item} button.respond")
    page.wait_for_selector(item, state="detached", timeout=10_000)  # responded: out of the queue
    wait_until(page, lambda p: kpi(p, "responded").startswith("1 / "))
    wait_until(page, lambda p: kpi(p, "backlog") == str(backlog - 1))
    assert kpi(page, "median") != "–"

    second = page.locator("#care-list li.queue-item").first.get_attribute("data-mention-id")
    page.click(f"#care-list li[data-mention-id='{second}'] button.resolve")
    page.wait_for_selector(f"#care-list li[data-mention-id='{second}']", state="detached", timeout=10_000)
    wait_until(page, lambda p: kpi(p, "backlog") == str(backlog - 2))

    third = page.locator("#care-list li.queue-item").first.get_attribute("data-mention-id")
    row = f"#care-list li[data-mention-id='{third}']"
    page.select_option(f"{row} select.handover-team", "marketing_pr")
    page.click(f"{row} button.handover")  # no reason yet: refused in the page
    assert "needs a reason" in page.text_content("#care-note")
    page.fill(f"{row} input.handover-reason", "a journalist asking for a statement")
    page.click(f"{row} button.handover")
    page.wait_for_selector(row, state="detached", timeout=10_000)
    wait_until(page, lambda p: kpi(p, "backlog") == str(backlog - 3))
    admin = {"Authorization": f"Bearer {site['keys']['admin']}"}
    pr = httpx.get(f"{site['base']}/v1/triage/marketing_pr/queue", headers=admin, params={"limit": 100}).json()
    [moved] = [i for i in pr["items"] if i["mention"]["id"] == third]
    assert moved["triage"]["history"][-1]["reason"] == "a journalist asking for a statement"
    page.screenshot(path=str(ARTIFACTS / "workspace-care-after.png"), full_page=False)

    phone = site["open"](site["keys"]["care"], "care", viewport=PHONE)
    phone.wait_for_selector("#care-list li.queue-item", timeout=10_000)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1  # no sideways scrolling
    phone.screenshot(path=str(ARTIFACTS / "workspace-care-phone.png"), full_page=False)


def test_data_feed_download_matches_the_api(site):
    page = site["open"](site["keys"]["data"], "data")
    assert not page.is_visible("#tab-admin") and not page.is_visible("#tab-care")
    page.select_option("#feed-brand", "united")
    page.select_option("#feed-format", "csv")
    curl = page.input_value("#feed-curl")
    assert curl.startswith('curl -N -H "Authorization: Bearer $EARSHOT_API_KEY"') and "brand=united" in curl
    assert "format=csv" in curl and "esk_" not in curl  # the key itself never goes in the command
    page.click("#feed-form button[type=submit]")
    page.wait_for_selector("#feed-preview li", timeout=10_000)
    with page.expect_download(timeout=20_000) as info:
        page.click("#feed-download")
    rows = list(csv.DictReader(io.StringIO(open(info.value.path(), encoding="utf-8").read())))
    api = httpx.get(f"{site['base']}/v1/feed", params={"brand": "united"},
                    headers={"Authorization": f"Bearer {site['keys']['data']}"})
    lines = [json.loads(line) for line in api.text.splitlines()]
    mentions = [line["mention"] for line in lines if "mention" in line]
    assert lines[-1]["end"] is True and len(mentions) == 36
    assert [r["id"] for r in rows] == [m["id"] for m in mentions]
    assert [r["text"] for r in rows] == [m["text"] for m in mentions]  # the hostile text too, as text
    assert [r["cursor"] for r in rows] == [line["cursor"] for line in lines if "mention" in line]
    page.screenshot(path=str(ARTIFACTS / "workspace-data.png"), full_page=False)


def test_admin_query_edit_shows_the_syntax_error_then_a_live_preview_and_manages_keys(site):
    page = site["open"](site["keys"]["admin"], "admin")
    page.fill("#query-id", "ws-luggage")
    page.fill("#query-name", "Luggage")
    page.fill("#query-text", "luggage AND (handling OR")
    page.wait_for_selector("#query-caret:not([hidden])", timeout=10_000)
    caret = page.text_content("#query-caret").split("\n")
    assert caret[0] == "luggage AND (handling OR" and caret[1].endswith("^")
    assert "syntax error" in page.text_content("#query-error")
    assert page.get_attribute("#query-text", "aria-invalid") == "true"
    page.screenshot(path=str(ARTIFACTS / "workspace-admin-error.png"), full_page=False)
    page.fill("#query-text", "luggage AND (handling OR bags)")
    page.wait_for_selector("#query-caret[hidden]", state="attached", timeout=10_000)
    wait_until(page, lambda p: "match" in p.text_content("#query-note"))
    assert page.text_content("#query-error") == "" and page.locator("#query-preview li").count() == 10
    page.click("#query-form button[type=submit]")
    page.wait_for_selector("#query-pick option[value=ws-luggage]", state="attached", timeout=10_000)

    page.fill("#newkey-name", "pr-desk")
    page.select_option("#newkey-role", "care")
    page.select_option("#newkey-teams", ["marketing_pr"])
    page.click("#key-create button[type=submit]")
    page.wait_for_selector("#newkey-secret:not([hidden])", timeout=10_000)
    made = page.input_value("#newkey-secret")
    assert made.startswith("esk_") and "teams marketing_pr" in page.text_content("#newkey-note")
    row = f"#keys-rows tr[data-key-id='{made.split('_')[1]}']"
    page.wait_for_selector(row, timeout=10_000)
    assert page.inner_text(row).split("\t")[:3] == ["pr-desk", "care", "marketing_pr"]
    headers = {"Authorization": f"Bearer {made}"}
    assert httpx.get(f"{site['base']}/v1/triage/marketing_pr/queue", headers=headers).status_code == 200
    assert httpx.get(f"{site['base']}/v1/triage/customer_care/queue", headers=headers).status_code == 403
    page.screenshot(path=str(ARTIFACTS / "workspace-admin.png"), full_page=True)
    page.click(f"{row} button.revoke")
    page.wait_for_selector(f"{row} td:text('revoked')", timeout=10_000)
    assert httpx.get(f"{site['base']}/v1/triage/marketing_pr/queue", headers=headers).status_code == 401
    # The admin sees every workspace; the keyboard moves between them.
    assert all(page.is_visible(f"#tab-{t}") for t in ("crisis", "comms", "care", "ir", "data", "admin"))
    page.focus("#tab-admin")
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.id") == "tab-comms" and page.is_visible("#view-comms")
    page.keyboard.press("ArrowRight")
    assert page.is_visible("#view-crisis") and not page.is_visible("#view-comms")
    for view in ("comms", "ir"):
        page.click(f"#tab-{view}")
        page.wait_for_selector(f"#view-{view}:not([hidden])")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / f"workspace-{view}.png"), full_page=False)
