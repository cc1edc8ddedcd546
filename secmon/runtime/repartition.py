"""Forwarding to the source tasks through the repartition topic, in batches.

Account tasks forward one small record per login (and per withdrawal failure, TOTP
enrolment …).  Producing each as its own Kafka record costs kafka-python tens of
microseconds per record on each side, more than the detectors themselves; so records are
grouped per destination partition and sent as one Kafka record (a msgpack array) per
partition per poll batch.  A record's partition is ``crc32(key) % partitions``: every
worker agrees, so all records of one key reach the same source task, in order.  Watermarks
are appended after the records they cover.
"""

from __future__ import annotations

import zlib

import msgspec
from kafka import KafkaProducer

from secmon.detectors.base import SourceRecord
from secmon.engine.task import WATERMARK

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[SourceRecord]).decode


def decode_batch(value: bytes) -> list[SourceRecord]:
    """The records of one repartition-topic message, in order."""
    return _decode(value)


class Repartitioner:
    def __init__(self, producer: KafkaProducer, topic: str, partitions: int, *, max_records: int = 2_000) -> None:
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.max_records = max_records
        self._pending: dict[int, list[SourceRecord]] = {}

    def add(self, record: SourceRecord) -> None:
        q = zlib.crc32(record.key.encode()) % self.partitions
        batch = self._pending.get(q)
        if batch is None:
            batch = self._pending[q] = []
        batch.append(record)
        if len(batch) >= self.max_records:
            self._send(q)

    def watermark(self, origin: str, stream_ms: int) -> None:
        """Tell every source task that ``origin`` (an account task) has reached ``stream_ms``."""
        mark = SourceRecord(key="", event_type=WATERMARK, event_id="", account_id="", ts=stream_ms, origin=origin)
        for q in range(self.partitions):
            self._pending.setdefault(q, []).append(mark)

    def flush(self) -> None:
        """Hand every pending batch to the producer (it sends them asynchronously)."""
        for q in list(self._pending):
            self._send(q)

    def _send(self, q: int) -> None:
        batch = self._pending.pop(q, None)
        if batch:
            self.producer.send(self.topic, value=_encode(batch), partition=q)
