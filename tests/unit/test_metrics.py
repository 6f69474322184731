"""Metrics and logs without services: lag arithmetic, the lag collector's manners during a scrape,
the API's route-template labels, dead-letter counting, and the JSON/text log lines."""

from __future__ import annotations

import io
import json
import logging
from collections import defaultdict
from datetime import datetime, timezone
from typing import NamedTuple

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.metrics import instrument, route_template
from pipeline.worker.dead_letters import dead_letter
from pipeline.logs import (JsonLogFormatter, TextLogFormatter, configure_logging, faust_logging_config,
                           record_context, uvicorn_log_config)
from pipeline.metrics import ConsumerLagCollector, consumer_lags, count_out, partition_lag

NOW = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- consumer lag -------------------------------------------------------------------------------

@pytest.mark.parametrize(("highwater", "committed", "read", "lag"), [
    (100, 40, 70, 60),      # committed is what a restart resumes from: records read but not committed count
    (100, 100, 99, 0),      # all committed
    (100, None, 9, 90),     # nothing committed yet: the consumed position stands in
    (100, None, None, 100),  # nothing committed or read: from the log start
    (0, None, None, 0),     # an empty partition
    (None, 5, 5, None),     # no fetch answered yet: no sample
    (10, 12, None, 0),      # a highwater older than the commit: never negative
])
def test_partition_lag(highwater, committed, read, lag):
    assert partition_lag(highwater, committed, read) == lag


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self, highwaters, committed, read, revoked=()):
        self.highwaters, self.revoked = highwaters, set(revoked)
        self._committed_offset = defaultdict(lambda: None, committed)
        self._read_offset = defaultdict(lambda: None, read)

    def assignment(self):
        return set(self.highwaters) | self.revoked

    def highwater(self, tp):
        if tp in self.revoked:
            raise AssertionError("Partition is not assigned")
        return self.highwaters[tp]


def test_consumer_lags_per_assigned_partition_without_touching_fausts_offsets():
    a0, a1, b0, gone = TP("a", 0), TP("a", 1), TP("b", 0), TP("a", 2)
    consumer = FakeConsumer({a0: 10, a1: None, b0: 7}, committed={a0: 4}, read={b0: 6}, revoked=[gone])
    assert list(consumer_lags(consumer)) == [("a", 0, 6), ("b", 0, 0)]
    assert set(consumer._committed_offset) == {a0} and set(consumer._read_offset) == {b0}


class FakeApp:
    def __init__(self, consumer):
        self._consumer = consumer


class BrokenConsumer:
    def assignment(self):
        raise RuntimeError("consumer not started")


def test_the_lag_collector_never_fails_a_scrape():
    collector = ConsumerLagCollector()
    collector.apps = {"down": FakeApp(BrokenConsumer()), "new": FakeApp(None),
                      "up": FakeApp(FakeConsumer({TP("raw", 3): 12}, committed={TP("raw", 3): 2}, read={}))}
    [family] = collector.collect()
    assert family.name == "earshot_consumer_lag"
    assert [(s.labels, s.value) for s in family.samples] == [({"app": "up", "topic": "raw", "partition": "3"}, 10)]
    assert [f.name for f in collector.describe()] == ["earshot_consumer_lag"]


# -- counters -----------------------------------------------------------------------------------

def test_count_out_adds_each_outcome_and_skips_zeros():
    before = sample("earshot_mentions_out_total", agent="unit", outcome="enriched")
    count_out("unit", enriched=3, rejected=0)
    assert sample("earshot_mentions_out_total", agent="unit", outcome="enriched") == before + 3
    assert REGISTRY.get_sample_value("earshot_mentions_out_total", {"agent": "unit", "outcome": "rejected"}) is None


def test_every_dead_letter_is_counted_by_stage():
    before = sample("earshot_dlq_total", stage="unit")
    dead_letter(stage="unit", reason="r", payload=b"x", failed_at=NOW)
    dead_letter(stage="unit", reason="r", payload=None, failed_at=NOW)
    assert sample("earshot_dlq_total", stage="unit") == before + 2


# -- the API ------------------------------------------------------------------------------------

def test_route_template_prefers_the_full_template():
    class Route(NamedTuple):
        path: str

    class Context(NamedTuple):
        path_format: str

    nested = {"route": Route("/alerts/{alert_id}"), "fastapi": {"effective_route_context": Context("/v1/alerts/{alert_id}")}}
    assert route_template(nested) == "/v1/alerts/{alert_id}"
    assert route_template({"route": Route("/healthz")}) == "/healthz"
    assert route_template({"type": "http", "path": "/x/1"}) == "unmatched"


def test_the_api_middleware_labels_requests_with_route_templates():
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict:
        if thing_id == "boom":
            raise RuntimeError("a bug")
        return {"id": thing_id}

    app = FastAPI()
    app.include_router(router, prefix="/unit")
    instrument(app)
    labels = {"method": "GET", "route": "/unit/things/{thing_id}"}
    ok, failed = sample("earshot_http_requests_total", **labels, status="200"), \
        sample("earshot_http_requests_total", **labels, status="500")
    timed = sample("earshot_http_request_seconds_count", route="/unit/things/{thing_id}")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/unit/things/1").status_code == 200
        assert client.get("/unit/things/2").status_code == 200
        assert client.get("/unit/things/boom").status_code == 500
        metrics = client.get("/metrics")
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    assert sample("earshot_http_requests_total", **labels, status="200") == ok + 2
    assert sample("earshot_http_requests_total", **labels, status="500") == failed + 1
    assert sample("earshot_http_request_seconds_count", route="/unit/things/{thing_id}") == timed + 3
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert 'route="/unit/things/1"' not in metrics.text and "earshot_http_requests_total" in metrics.text


# -- logs ---------------------------------------------------------------------------------------

@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines_of(stream: str) -> list[dict]:
    return [json.loads(line) for line in stream.splitlines() if line.strip()]


def test_a_dead_letter_logs_one_json_line_with_its_mention_and_position(restore_logging, capsys):
    # What the worker and the spike watcher run: Faust's (mode's) logging setup with our config.
    from mode.utils.logging import setup_logging

    setup_logging(loglevel="INFO", logging_config=faust_logging_config("json"))
    dead_letter(stage="validate", reason="text is empty", payload=b"{}", failed_at=NOW, mention_id="x:1",
                topic="mentions.raw", partition=2, offset=41)
    [line] = [r for r in lines_of(capsys.readouterr().err) if r["logger"] == "pipeline.worker.dead_letters"]
    assert line["level"] == "WARNING" and "text is empty" in line["message"]
    assert (line["mention_id"], line["topic"], line["partition"], line["offset"]) == ("x:1", "mentions.raw", 2, 41)
    assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"]


def test_the_api_and_connector_setups_log_json(restore_logging, capsys):
    import logging.config

    logging.config.dictConfig(uvicorn_log_config("json"))
    logging.getLogger("uvicorn.error").warning("Started server process [%d]", 7)  # uvicorn sets its levels itself
    logging.getLogger("earshot.api").warning("Elasticsearch unavailable: %s", "down")
    configure_logging("json", "info")
    logging.getLogger("connectors.runner").info("batch", extra=record_context("rss:1"))
    server, api, connector = lines_of(capsys.readouterr().err)
    assert server["logger"] == "uvicorn.error" and server["message"] == "Started server process [7]"
    assert api["level"] == "WARNING" and api["message"] == "Elasticsearch unavailable: down"
    assert connector["mention_id"] == "rss:1" and connector["topic"] is None


def test_exceptions_and_text_lines():
    record = logging.LogRecord("earshot.worker", logging.ERROR, __file__, 1, "bulk failed for %s", ("x:1",), None)
    record.__dict__.update(record_context("x:1", "mentions.enriched", 0, 5))
    text = TextLogFormatter().format(record)
    assert text.endswith("earshot.worker: bulk failed for x:1 [mention_id=x:1 topic=mentions.enriched partition=0 offset=5]")
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        failed = logging.LogRecord("earshot.worker", logging.CRITICAL, __file__, 1, "crash", (), sys.exc_info())
    line = json.loads(JsonLogFormatter().format(failed))
    assert "ValueError: bad" in line["exc_info"] and "\n" not in JsonLogFormatter().format(failed)


def test_text_format_is_one_setting_away(restore_logging):
    stream = io.StringIO()
    configure_logging("text", "info")
    logging.getLogger().handlers[0].setStream(stream)
    logging.getLogger("earshot.spikes").info("alerts: %s", "united/volume")
    assert "[INFO] earshot.spikes: alerts: united/volume" in stream.getvalue()


# -- the stall watchdog ---------------------------------------------------------------------------

def test_a_partition_whose_lag_grows_while_nothing_is_read_is_stalled_then_recovers():
    from pipeline.metrics import StallWatch

    watch = StallWatch(idle_s=60)
    assert watch.observe(0, [("t", 0, 5, 10)]) == ([], [])
    assert watch.observe(30, [("t", 0, 9, 10)]) == ([], [])  # idle 30 s: not yet
    new, _ = watch.observe(61, [("t", 0, 12, 10)])
    assert new == [(("t", 0), 5, 12, 61)] and watch.stalled == {("t", 0)}
    assert watch.observe(71, [("t", 0, 14, 10)]) == ([], [])  # reported once per stall
    assert watch.observe(81, [("t", 0, 3, 25)]) == ([], [("t", 0)])  # reading again
    assert watch.stalled == set()


def test_an_idle_partition_with_nothing_new_is_not_stalled_and_a_moving_one_never_is():
    from pipeline.metrics import StallWatch

    watch = StallWatch(idle_s=60)
    for t in range(0, 300, 10):  # caught up and quiet: lag stays, read stays
        assert watch.observe(t, [("quiet", 0, 2, 7)])[0] == []
    for t in range(0, 300, 10):  # busy but keeping up: lag grows, reads advance
        assert watch.observe(t, [("busy", 1, t, t)])[0] == []


def test_a_stalled_partition_that_is_revoked_is_forgotten():
    from pipeline.metrics import StallWatch

    watch = StallWatch(idle_s=10)
    watch.observe(0, [("t", 0, 1, None)])
    assert watch.observe(20, [("t", 0, 8, None)])[0]  # nothing ever read, lag grew
    assert watch.observe(30, []) == ([], [("t", 0)])
