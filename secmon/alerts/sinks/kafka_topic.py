"""A Kafka topic sink (findings feed, dead letters, user notifications).

Each record carries the outbox ``dedup_key`` in the ``secmon-dedup`` header.  After a crash
between produce and mark-sent, :meth:`reconcile` reads the topic back from shortly before the
claim and marks the items it finds as delivered, so the topic gets every message once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from secmon.alerts.sinks.base import DELIVERED, Outcome, Retry, Sink
from secmon.store.outbox import OutboxItem

log = logging.getLogger(__name__)
DEDUP_HEADER = "secmon-dedup"


def send_item(producer: KafkaProducer, topic: str, item: OutboxItem) -> Any:
    """Send an outbox row as its feed record: its key, its payload and the dedup header that
    :meth:`KafkaTopicSink.reconcile` looks for.  Returns the producer's future."""
    return producer.send(topic, key=item.msg_key, value=item.payload, headers=[(DEDUP_HEADER, item.dedup_key.encode())])


class KafkaTopicSink(Sink):
    def __init__(
        self,
        channel: str,
        topic: str,
        producer: KafkaProducer,
        consumer_factory: Callable[[], KafkaConsumer],
        *,
        flush_timeout_s: float = 10.0,
    ) -> None:
        self.channel = channel
        self.topic = topic
        self.producer = producer
        self._consumer_factory = consumer_factory
        self.flush_timeout_s = flush_timeout_s

    def deliver(self, items: Sequence[OutboxItem]) -> list[Outcome]:
        futures: list[Any] = []
        for item in items:
            try:
                futures.append(send_item(self.producer, self.topic, item))
            except KafkaError as exc:
                futures.append(exc)
        try:
            self.producer.flush(timeout=self.flush_timeout_s)
        except KafkaError as exc:
            log.warning("flush to %s failed: %s", self.topic, exc)
        outcomes: list[Outcome] = []
        for fut in futures:
            if isinstance(fut, Exception):
                outcomes.append(Retry(f"{type(fut).__name__}: {fut}"))
                continue
            try:
                fut.get(timeout=0.1 if fut.is_done else self.flush_timeout_s)
                outcomes.append(DELIVERED)
            except Exception as exc:  # KafkaError or timeout: keep it for a retry
                outcomes.append(Retry(f"{type(exc).__name__}: {exc}"))
        return outcomes

    def reconcile(self, items: Sequence[OutboxItem]) -> set[int]:
        if not items:
            return set()
        wanted = {item.dedup_key.encode(): item.id for item in items}
        since_ms = min((i.claimed_ms or i.created_ms) for i in items) - 60_000
        found: set[int] = set()
        consumer = self._consumer_factory()
        try:
            parts = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            if not tps:
                return set()
            consumer.assign(tps)
            ends = consumer.end_offsets(tps)
            starts = consumer.offsets_for_times({tp: max(0, since_ms) for tp in tps})
            todo = {}
            for tp in tps:
                off = starts.get(tp)
                # Tansu answers (0, -1) rather than None for "no record at or after that time".
                start = ends[tp] if off is None or off.timestamp == -1 else off.offset
                if start < ends[tp]:
                    consumer.seek(tp, start)
                    todo[tp] = ends[tp]
            while todo:
                batch = consumer.poll(timeout_ms=1000)
                if not batch:
                    break
                for tp, records in batch.items():
                    for rec in records:
                        for name, value in rec.headers or ():
                            if name == DEDUP_HEADER and value in wanted:
                                found.add(wanted[value])
                        if rec.offset + 1 >= todo.get(tp, 0):
                            todo.pop(tp, None)
        finally:
            consumer.close()
        return found
