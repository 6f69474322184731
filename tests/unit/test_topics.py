"""Which topics a process makes before it starts, with what config, and when they count as ready."""

from __future__ import annotations

from pipeline.settings import Settings
from pipeline.worker.topics import TopicSpec, earshot_topics, faust_config, faust_internal_topics, missing_or_unled


def test_the_watcher_makes_its_changelogs_as_faust_would():
    from pipeline.alerts import watcher

    specs = {s.name: s for s in faust_internal_topics(watcher.app)}
    app_id = watcher.app.conf.id
    minutes = specs[f"{app_id}-brand-minutes-changelog"]
    assert minutes.partitions == watcher.settings.topic_partitions
    assert minutes.config == {"cleanup.policy": "compact,delete", "retention.ms": str(6 * 3600 * 1000)}
    assert specs[f"{app_id}-spike-watch-changelog"].config == {"cleanup.policy": "compact"}
    assert specs[f"{app_id}-__assignor-__leader"].partitions == 1


def test_the_mention_worker_has_no_table_only_the_leader_topic():
    from pipeline.worker import app

    assert [s.name for s in faust_internal_topics(app.app)] == [f"{app.app.conf.id}-__assignor-__leader"]


def test_faust_config():
    assert faust_config(None, True, None) == {"cleanup.policy": "compact"}
    assert faust_config(60.5, True, True) == {"cleanup.policy": "compact,delete", "retention.ms": "60500"}
    assert faust_config(None, None, None) == {}


def test_earshot_topics_follow_the_settings():
    specs = earshot_topics(Settings(topic_prefix="t.", topic_partitions=3, topic_replication=2))
    assert len(specs) == 6 and all(s.partitions == 3 and s.replication == 2 for s in specs)
    assert all(s.name.startswith("t.") for s in specs)


def test_a_topic_is_ready_only_with_every_partition_led():
    spec = [TopicSpec("a", 2, 1)]
    led = {"topic": "a", "error_code": 0, "partitions": [{"partition": 0, "leader": 1}, {"partition": 1, "leader": 2}]}
    assert missing_or_unled([led], spec) == []
    assert missing_or_unled([], spec) == ["a"]  # not there yet
    assert missing_or_unled([{**led, "partitions": led["partitions"][:1]}], spec) == ["a"]  # metadata partial
    assert missing_or_unled([{**led, "partitions": [{"partition": 0, "leader": -1}, {"partition": 1, "leader": 2}]}],
                            spec) == ["a"]  # leader election under way
    assert missing_or_unled([{**led, "error_code": 5}], spec) == ["a"]  # LEADER_NOT_AVAILABLE


def test_kafka_python_3_spelling_of_the_metadata():
    spec = [TopicSpec("a", 2, 1)]
    led = {"name": "a", "error_code": 0, "partitions": [{"partition_index": 0, "leader_id": 1},
                                                         {"partition_index": 1, "leader_id": 1}]}
    assert missing_or_unled([led], spec) == []
    assert missing_or_unled([{**led, "partitions": [{"partition_index": 0, "leader_id": -1}] * 2}], spec) == ["a"]
    assert missing_or_unled([{"name": "a", "error_code": 3, "partitions": []}], spec) == ["a"]


class _Metadata:
    """What a consumer's metadata says of each topic's partition count (None: unknown)."""

    def __init__(self, counts):
        self.counts = counts

    def topic_partitions(self, topic):
        return self.counts.get(topic)


def test_a_changelog_not_yet_in_the_metadata_is_not_a_mismatch_but_a_real_one_still_is():
    import faust
    import pytest

    from pipeline.worker.streams import LedTable

    app = faust.App("led-table-test", Table=LedTable, autodiscover=False)
    table = app.Table("t", partitions=4, key_type=str)
    assert isinstance(table, LedTable)
    changelog = table.changelog_topic_name
    app.consumer = _Metadata({"src": 4, changelog: 0})  # just created: metadata lags
    table._verify_source_topic_partitions("src")  # no PartitionsMismatch
    assert "src" not in table._verified_source_topics_for_partitions  # asked again next time
    app.consumer = _Metadata({"src": 4, changelog: 4})
    table._verify_source_topic_partitions("src")
    assert "src" in table._verified_source_topics_for_partitions
    other = app.Table("u", partitions=4, key_type=str)
    app.consumer = _Metadata({"src": 4, other.changelog_topic_name: 2})
    with pytest.raises(faust.exceptions.PartitionsMismatch):
        other._verify_source_topic_partitions("src")


def test_the_watcher_tables_are_led_tables():
    from pipeline.alerts import watcher
    from pipeline.worker.streams import LedTable

    assert isinstance(watcher.spike_watch, LedTable)
    assert isinstance(watcher.brand_minutes.table, LedTable)
