"""The Kafka topic sink and the dispatcher: delivery, and reconciliation after a crash
between produce and mark-sent (the topic gets each message once)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from secmon.alerts.dispatcher import Dispatcher
from secmon.alerts.sinks.base import Delivered
from secmon.alerts.sinks.kafka_topic import KafkaTopicSink
from secmon.config import KafkaConfig
from secmon.metrics import Metrics
from secmon.sources.kafka import make_consumer, make_producer
from secmon.store.db import open_database
from secmon.store.outbox import SENT, Outbox, OutboxMessage, enqueue

pytestmark = [pytest.mark.integration]


def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    out: list[bytes] = []
    while len(out) < end:
        for recs in c.poll(timeout_ms=500).values():
            out.extend(r.value for r in recs)
    c.close()
    return out


def test_dispatcher_delivers_and_reconciles_inflight_rows(broker: str, tmp_path: Path) -> None:
    topic = f"sink-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    cfg = KafkaConfig(bootstrap_servers=broker)
    engine = open_database(f"sqlite:///{tmp_path / 'o.db'}")
    producer = make_producer(cfg)
    sink = KafkaTopicSink("feed", topic, producer, lambda: make_consumer(cfg, group=False))
    with engine.begin() as conn:
        enqueue(conn, [OutboxMessage("feed", f"m{i}", f"v{i}".encode()) for i in range(10)], now_ms=1_000)

    # A dispatcher claims 4 rows and produces them, then "crashes" before marking them sent.
    crashed = Outbox(engine, "crashed")
    claimed = crashed.claim("feed", 4, now_ms=2_000)
    assert all(isinstance(o, Delivered) for o in sink.deliver(claimed))
    # Another dispatcher starts, recovers the orphaned rows, and delivers the rest.
    clock = [10_000_000]
    d = Dispatcher(Outbox(engine, "new"), {"feed": sink}, Metrics(), lease_ms=1_000, clock=lambda: clock[0])
    assert d.recover() == 4
    assert d.run_once() == 6
    values = _read_all(broker, topic)
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(10))
    assert Outbox(engine, "x").counts()[("feed", SENT)] == 10
    producer.close()
