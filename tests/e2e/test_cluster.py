"""earshot on a real cluster: 3 Kafka brokers (RF 3, min.insync.replicas 2, acks=all) and 3
Elasticsearch nodes (1 replica per shard), one member killed with -9 mid-stream.

Short versions of ``bench/cluster.py``'s drills (``make bench-cluster`` runs all four, larger),
on a cluster of their own (``deploy/local/cluster.sh`` on ports 19391-19393 / 19401-19403, not
the bench's), torn down with ``cluster.sh down`` at the end.

Six JVMs and the workers take about 5 minutes on an idle 2-core machine and 11 on a loaded one,
so they run on request: ``make test-cluster`` (``EARSHOT_TEST_CLUSTER=1``), not in ``make test``.
"""

from __future__ import annotations

import os
import shutil

import pytest

from bench.cluster import ClusterStack, broker_kill_drill, node_kill_drill
from bench.harness import REPO

pytestmark = [pytest.mark.services, pytest.mark.e2e,
              pytest.mark.skipif(not os.environ.get("EARSHOT_TEST_CLUSTER"),
                                 reason="the cluster drills run with make test-cluster (EARSHOT_TEST_CLUSTER=1)")]


@pytest.fixture(scope="module")
def cluster():
    # Under the repo's state folder: the ES nodes may run as another user, who must reach it.
    home = REPO / ".earshot" / "cluster-test"
    stack = ClusterStack(home, kafka_base=19390, es_base=19400)
    stack.up()
    try:
        yield stack
    finally:
        try:
            stack.down()
        finally:
            stack.destroy()
            shutil.rmtree(home, ignore_errors=True)


def assert_nothing_lost(result: dict) -> None:
    assert result["lost"] == 0 and result["duplicates"] == 0, result
    assert result["indexed"] == result["produced"] > 0, result
    assert result["unplanned_worker_crashes"] == 0, result


def test_a_broker_killed_mid_stream_loses_nothing_and_the_worker_keeps_going(cluster, tmp_path):
    result = broker_kill_drill(cluster, tmp_path, n=800, rate=40.0, down_s=15.0)
    print({k: v for k, v in result.items() if k != "samples"})
    assert_nothing_lost(result)
    assert result["replay_exit"] == 0, result["replay_output"]
    assert result["raw_topic_duplicates"] == 0, result
    assert result["indexed_before_kill"] < result["produced"], "the stream was done before the kill"
    assert result["workers_kept_going"], result


def test_an_elasticsearch_node_killed_mid_stream_keeps_search_answering_and_loses_nothing(cluster, tmp_path):
    result = node_kill_drill(cluster, tmp_path, n=800, rate=40.0, down_s=20.0)
    print({k: v for k, v in result.items() if k != "samples"})
    assert_nothing_lost(result)
    assert result["never_red"] and "yellow" in result["health_seen"], result["health_seen"]
    assert result["search_failed"] == 0 and result["search_ok"] > 0, result["samples"]
    assert result["indexed_while_node_down"] > 0, result["samples"]
