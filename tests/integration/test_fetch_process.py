"""The fetch process (``secmon/sources/fetch_process.py``) against the embedded broker: it
must mean what kafka-python's consumer means — positions never ahead of what poll returned,
seeks drop the read-ahead, rebalance callbacks (and commits inside them) in the worker —
and it must not outlive the worker."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from secmon.config import KafkaConfig
from secmon.sources.fetch_process import FetchedRecord, FetchProcessError, ProcessConsumer
from secmon.sources.kafka import consumer_options

pytestmark = [pytest.mark.integration]


def _topic(broker: str, partitions: int, records: int) -> str:
    topic = f"fp-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker)
    for i in range(records):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % partitions)
    producer.flush()
    producer.close()
    return topic


def _options(broker: str, group: str, **extra: Any) -> dict[str, Any]:
    cfg = KafkaConfig(bootstrap_servers=broker, group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=2000)
    return consumer_options(cfg) | extra


class Recorder(ConsumerRebalanceListener):
    def __init__(self, consumer: ProcessConsumer | None = None, commit_on_revoke: int | None = None) -> None:
        self.consumer = consumer
        self.commit_on_revoke = commit_on_revoke
        self.events: list[tuple[str, list[TopicPartition]]] = []

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:  # kafka-python also calls it, empty, before the first assignment
            self.events.append(("revoked", sorted(revoked)))
        if self.consumer is not None and self.commit_on_revoke is not None and revoked:
            self.consumer.commit_async({tp: OffsetAndMetadata(self.commit_on_revoke, "", -1) for tp in revoked})

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.events.append(("assigned", sorted(assigned)))


def _poll_until(consumer: ProcessConsumer, want: int, timeout_s: float = 30) -> list[FetchedRecord]:
    got: list[FetchedRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(records)
    return got


def test_positions_follow_what_poll_returned_not_the_read_ahead(broker: str) -> None:
    topic = _topic(broker, 1, 100)
    tp = TopicPartition(topic, 0)
    consumer = ProcessConsumer(_options(broker, f"g-{topic}", max_poll_records=10))
    try:
        consumer.subscribe([topic], Recorder())
        first = _poll_until(consumer, 1)  # what the child had handed over: 10 or more
        n = len(first)
        assert n >= 10 and [r.offset for r in first] == list(range(n))
        assert first[0].topic == topic and first[0].partition == 0 and first[0].value == b"v0"
        time.sleep(0.5)  # the child has read ahead by now
        assert consumer.position(tp) == n
        rest = _poll_until(consumer, 100 - n)
        assert [r.offset for r in rest] == list(range(n, 100))
        assert consumer.position(tp) == 100
        assert consumer.highwater(tp) == 100
        assert consumer.partitions_for_topic(topic) == {0}
    finally:
        consumer.close()


def test_seek_drops_what_was_read_ahead(broker: str) -> None:
    topic = _topic(broker, 1, 60)
    tp = TopicPartition(topic, 0)
    consumer = ProcessConsumer(_options(broker, f"g-{topic}", max_poll_records=10))
    listener = Recorder()
    try:
        consumer.subscribe([topic], listener)
        first = _poll_until(consumer, 1)
        assert [r.offset for r in first] == list(range(len(first)))
        time.sleep(0.5)
        consumer.seek(tp, 3)
        assert consumer.position(tp) == 3
        again = _poll_until(consumer, 57)
        assert [r.offset for r in again] == list(range(3, 60))
    finally:
        consumer.close()
    # Closing leaves the group: the worker's listener ran (its final checkpoint goes there).
    assert listener.events[-1] == ("revoked", [tp])
    assert consumer._process.returncode == 0


def test_rebalance_runs_the_listener_in_the_worker_with_commits_inside(broker: str) -> None:
    topic = _topic(broker, 2, 20)
    group = f"g-{topic}"
    first = ProcessConsumer(_options(broker, group))
    listener = Recorder(first, commit_on_revoke=7)
    try:
        first.subscribe([topic], listener)
        assert len(_poll_until(first, 20)) == 20
        assert listener.events == [("assigned", [TopicPartition(topic, 0), TopicPartition(topic, 1)])]
        second = ProcessConsumer(_options(broker, group))
        try:
            second.subscribe([topic], Recorder())
            deadline = time.monotonic() + 30
            while len(first.assignment()) != 1 and time.monotonic() < deadline:
                first.poll(timeout_ms=200)
                second.poll(timeout_ms=200)
            assert len(first.assignment()) == 1
            assert listener.events[1][0] == "revoked"
            # The commit made inside the revoke landed for the group.
            check = KafkaConsumer(bootstrap_servers=broker, group_id=group, enable_auto_commit=False)
            assert check.committed(TopicPartition(topic, 0)) == 7
            check.close()
        finally:
            second.close()
    finally:
        first.close()


def test_the_fetch_process_does_not_outlive_the_worker(broker: str) -> None:
    topic = _topic(broker, 1, 5)
    consumer = ProcessConsumer(_options(broker, f"g-{topic}"))
    consumer.subscribe([topic], Recorder())
    assert len(_poll_until(consumer, 5)) == 5
    consumer._conn.close()  # what the kernel does when the worker is SIGKILLed
    assert consumer._process.wait(15) == 0


def test_a_dead_fetch_process_is_an_error_not_a_hang(broker: str) -> None:
    topic = _topic(broker, 1, 5)
    consumer = ProcessConsumer(_options(broker, f"g-{topic}"))
    try:
        consumer.subscribe([topic], Recorder())
        consumer._process.kill()
        consumer._process.wait(5)
        with pytest.raises(FetchProcessError, match="gone"):
            for _ in range(50):
                consumer.poll(timeout_ms=100)
        with pytest.raises(FetchProcessError):
            consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(1, "", -1)})
    finally:
        consumer.close(timeout_s=2)
