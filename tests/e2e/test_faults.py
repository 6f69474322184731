"""Faults against real services: kill -9 mid-stream, Elasticsearch down for a minute, the Kafka
broker stopped and started, poison input to a running worker.

The drills live in ``bench/faults.py`` (``make bench-faults`` runs the same code and writes
bench/results/faults.json); here they run on their own Kafka + Elasticsearch pair, so stopping
a service never disturbs the rest of the session.
"""

from __future__ import annotations

import shutil
import uuid

import pytest

from bench.faults import DrillStack, crash_drill, es_outage_drill, kafka_restart_drill, poison_drill
from bench.harness import REPO

pytestmark = [pytest.mark.services, pytest.mark.e2e]


@pytest.fixture(scope="module")
def stack():
    # Under the repo's state folder (not pytest's private tmp): the ES node may run as another
    # user, who must be able to reach its files.
    home = REPO / ".earshot" / f"drills-{uuid.uuid4().hex[:6]}"
    drill_stack = DrillStack(home)
    drill_stack.up()
    yield drill_stack
    try:
        drill_stack.destroy()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture()
def work(tmp_path):
    return tmp_path


def assert_nothing_lost(result: dict) -> None:
    assert result["lost"] == 0 and result["duplicates"] == 0, result
    assert result["indexed"] == result["produced"] > 0, result
    assert result["unplanned_worker_crashes"] == 0, result


def test_kill_9_three_times_loses_nothing_doubles_nothing_and_raises_the_spike_once(stack, work):
    result = crash_drill(stack, work, n=10_000, kills=3)
    print(result)
    assert_nothing_lost(result)
    assert result["produced"] == 10_000 and result["kills"] == 3
    spikes = result["spike_alert_ids"]
    assert "volume" in spikes, f"the spike raised no volume alert: {result}"
    assert all(len(ids) == 1 for ids in spikes.values()), f"a re-raise made a second alert: {spikes}"
    assert len({i for ids in spikes.values() for i in ids}) == 1, f"one burst, one incident: {spikes}"


def test_elasticsearch_down_for_a_minute_pauses_indexing_and_loses_nothing(stack, work):
    result = es_outage_drill(stack, work, n=3000, outage_s=60)
    print(result)
    assert_nothing_lost(result)
    assert result["indexed_before_outage"] < result["produced"], "the stream was done before the outage"
    assert result["healthz_always_200"] and result["readyz_503_during"], result
    # Backoff (capped at 30 s), not a busy loop: a handful of bulk attempts in 60 s.
    assert 1 <= result["bulk_attempts_during_outage"] <= 20, result
    # Consumption of mentions.raw paused (the worker indexes what it reads): nothing committed past what was indexed.
    assert result["raw_offsets_committed_at_end"] == result["raw_offsets_committed_10s_in"], result
    assert result["raw_offsets_committed_10s_in"] > 0, result  # it had committed what came before the outage
    assert result["worker_rss_mb_max"] - result["worker_rss_mb_at_start"] < 300, result


def test_kafka_broker_down_and_back_loses_nothing_the_connectors_were_acknowledged_for(stack, work):
    result = kafka_restart_drill(stack, work, n=3000, live=1500, down_s=40)
    print({k: v for k, v in result.items() if k != "replay_output"})
    assert_nothing_lost(result)
    assert result["replay_exit"] == 0, result["replay_output"]
    assert result["live_error"] is None and result["live_acknowledged"] == result["live_total"], result
    assert result["indexed_before_restart"] < result["produced"], "the stream was done before the restart"


def test_poison_records_go_to_the_dead_letter_topic_and_hostile_text_is_served_escaped(stack, work):
    result = poison_drill(stack, work, n_bad=500, n_good=60)
    print(result)
    assert result["unplanned_worker_crashes"] == 0
    assert result["dead_lettered"] == result["produced_bad"] == 500
    assert result["indexed_good"] == result["stored_verbatim"] == result["produced_good"]
    api = result["api"]
    assert api["status"] == 200 and api["content_type"].startswith("application/json") and api["nosniff"], api
    assert api["hits"] > 0 and api["texts_verbatim"] and api["highlights_escaped"], api
