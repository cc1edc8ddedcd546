"""A paused and resumed partition is fetched again (secmon.sources.consumer), on a real broker.

kafka-python 3.0.12 parks a paused partition's fetched records and never puts them back once
its in-line slot holds drained records of another partition: the partition stalls for good.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from secmon.sources.consumer import ResumableConsumer

pytestmark = [pytest.mark.integration]

PER_PARTITION = 3_000


@pytest.fixture(scope="module")
def two_partitions(broker: str) -> str:
    topic = "resume-test"
    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker, linger_ms=5)
    for i in range(PER_PARTITION):
        for p in (0, 1):
            producer.send(topic, value=b"x" * 100 + str(i).encode(), partition=p)
    producer.flush()
    producer.close()
    return topic


def _pause_drain_other_resume(consumer: Any, topic: str) -> int:
    """Take one record of a partition, pause it while the rest of its fetch is in line, read
    the other partition to the end, resume; returns how far the paused one gets after."""
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    first = None
    while first is None:
        for tp, recs in consumer.poll(timeout_ms=1000, max_records=1).items():
            if recs:
                first = tp
    other = tps[1 - first.partition]
    consumer.pause(first)
    for _ in range(60):
        consumer.poll(timeout_ms=200, max_records=1000)
        if consumer.position(other) >= PER_PARTITION:
            break
    assert consumer.position(other) == PER_PARTITION
    consumer.resume(first)
    for _ in range(20):
        consumer.poll(timeout_ms=200, max_records=1000)
    return int(consumer.position(first))


def test_a_resumed_partition_is_read_to_the_end(broker: str, two_partitions: str) -> None:
    consumer = ResumableConsumer(bootstrap_servers=broker, group_id=None, enable_auto_commit=False)
    try:
        assert _pause_drain_other_resume(consumer, two_partitions) == PER_PARTITION
    finally:
        consumer.close()


def test_kafka_python_still_needs_the_workaround(broker: str, two_partitions: str) -> None:
    """When this fails, kafka-python has fixed its resume: secmon.sources.consumer can go."""
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=None, enable_auto_commit=False)
    try:
        assert _pause_drain_other_resume(consumer, two_partitions) < PER_PARTITION
    finally:
        consumer.close()
