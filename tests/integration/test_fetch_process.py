"""The fetch process (``secmon/sources/fetch_process.py``) against the embedded broker: it
must mean what kafka-python's consumer means — positions never ahead of what poll returned,
seeks drop the read-ahead, rebalance callbacks (and commits inside them) in the worker —
and it must not outlive the worker."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from secmon.config import KafkaConfig
from secmon.contract import BadRecord, EventDecoder
from secmon.sources.fetch_process import FetchedRecord, FetchProcessError, ProcessConsumer
from secmon.sources.kafka import consumer_options
from tests.helpers.events import T0, ev, geo

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


def test_pause_and_resume_take_effect_and_a_bad_partition_is_not_fatal(broker: str) -> None:
    topic = _topic(broker, 2, 40)
    consumer = ProcessConsumer(_options(broker, f"g-{topic}", max_poll_records=5))
    paused, other = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        consumer.subscribe([topic], Recorder())
        _poll_until(consumer, 1)
        consumer.pause(paused, TopicPartition(topic, 7))  # no such partition: the child logs it
        before = consumer.position(paused)
        time.sleep(0.5)  # batches read ahead before the pause may still come
        got = _poll_until(consumer, 40, timeout_s=5)
        late = [r.offset for r in got if r.partition == 0]
        assert consumer.position(other) == 20  # the other partition went on to its end
        assert consumer.position(paused) < 20  # this one stopped: at most the read-ahead came
        assert late == list(range(before, consumer.position(paused)))
        consumer.resume(paused)
        rest = _poll_until(consumer, 20 - consumer.position(paused))
        assert [r.offset for r in rest] == list(range(before + len(late), 20))
        assert consumer.position(paused) == 20
    finally:
        consumer.close()


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
    # What the kernel does when the worker is SIGKILLed: every end of the socket closes (a
    # thread of a live process blocked in recv on it keeps it open, so shut it down instead).
    consumer._conn.close()
    consumer._sock.shutdown(socket.SHUT_RDWR)
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


def test_input_records_arrive_decoded_as_the_worker_would_decode_them(broker: str) -> None:
    """The child decodes the input topics with the contract's decoder: a good record arrives
    as the same event (its event time included), a bad one with the reason the worker's own
    decoder gives and its original bytes; other topics pass through as bytes."""
    good = [
        ev("login.failed", "acct-1", T0, ip="203.0.113.7", geo=geo("SG", 1.29, 103.85)),
        ev("account.locked", "acct-1", T0 + 1, {"locked_until": "2026-11-01T08:30:00.000+08:00"}),
        ev("withdrawal.requested", "acct-2", T0 + 2),
        ev("account.snapshot", "acct-2", T0 + 3),
    ]
    raw = [json.dumps(e).encode() for e in good] + [
        b"{not json",
        json.dumps({**good[0], "event_type": "login.teleported"}).encode(),
        json.dumps({**good[0], "ip": "not-an-ip"}).encode(),
        json.dumps(good[2]).encode() + b" " * 600,  # over max_event_bytes below
    ]
    inputs, other = _topic(broker, 1, 0), _topic(broker, 1, 0)
    producer = KafkaProducer(bootstrap_servers=broker)
    for value in raw:
        producer.send(inputs, value=value)
    producer.send(other, value=raw[0])
    producer.flush()
    producer.close()
    consumer = ProcessConsumer(_options(broker, f"g-{inputs}"), decode_topics=[inputs], max_event_bytes=600,
                               decode_policy="always")
    try:
        consumer.subscribe([inputs, other], Recorder())
        got = _poll_until(consumer, len(raw) + 1)
    finally:
        consumer.close()
    mine = EventDecoder(max_bytes=600)
    fetched = sorted((r for r in got if r.topic == inputs), key=lambda r: r.offset)
    assert len(fetched) == len(raw)
    for rec, value in zip(fetched, raw, strict=True):
        try:
            expected = mine.decode(value)
        except BadRecord as bad:
            assert rec.event is None and rec.value == value
            assert rec.rejected is not None
            assert (rec.rejected.reason, rec.rejected.detail, rec.rejected.event_id) == (
                bad.reason, bad.detail, bad.event_id)  # fmt: skip
            continue
        assert rec.rejected is None and rec.value is None and rec.event is not None
        event = EventDecoder.adopt(rec.event)
        assert type(event) is type(expected) and event == expected and event.ts == expected.ts
    assert [r.rejected.reason for r in fetched if r.rejected] == ["not_json", "unknown_event_type", "bad_ip", "oversize"]
    passed = [r for r in got if r.topic == other]
    assert [(r.value, r.event, r.rejected) for r in passed] == [(raw[0], None, None)]


def test_the_child_decodes_while_the_worker_is_the_slower_side(broker: str) -> None:
    """Batches waiting for the worker when it asks (it is the slower side): the next ones
    are decoded in the child.  A worker waiting for records: they come as bytes.  Decoded
    or not, the events are the same."""
    topic = _topic(broker, 1, 0)
    producer = KafkaProducer(bootstrap_servers=broker)
    raw: list[bytes] = []

    def produce(n: int, delay_s: float = 0.0) -> None:
        time.sleep(delay_s)
        for _ in range(n):
            raw.append(json.dumps(ev("login.failed", f"acct-{len(raw)}", T0 + len(raw))).encode())
            producer.send(topic, value=raw[-1])
        producer.flush()

    def wait_until_ready() -> None:
        deadline = time.monotonic() + 30
        while not consumer._ready() and time.monotonic() < deadline:
            time.sleep(0.05)

    consumer = ProcessConsumer(_options(broker, f"g-{topic}", max_poll_records=10), decode_topics=[topic])
    try:
        consumer.subscribe([topic], Recorder())
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)  # the rebalance: nothing fetched yet
        busy: list[FetchedRecord] = []
        for _ in range(10):  # a slow worker: each time it asks, a batch is waiting for it
            produce(10)
            want = len(raw)
            while len(busy) < want and time.monotonic() < deadline + 30:
                wait_until_ready()
                for records in consumer.poll(timeout_ms=0).values():
                    busy.extend(records)
        late = threading.Thread(target=produce, args=(10, 1.5))
        late.start()
        idle = _poll_until(consumer, 10)  # the worker waits for these (its credits say so)
        late.join()
    finally:
        consumer.close()
        producer.close()
    assert [r.offset for r in busy + idle] == list(range(110))
    # The first batches went over before the worker had said (often enough) that it finds
    # them waiting: bytes.  Then the child decoded the next ones.
    assert all(r.event is None for r in busy[:10])
    decoded = [r for r in busy if r.event is not None]
    assert len(decoded) >= 40
    decoder = EventDecoder()
    for rec in decoded:
        assert rec.value is None and rec.event is not None
        assert EventDecoder.adopt(rec.event) == decoder.decode(raw[rec.offset])
    for rec in busy + idle:
        if rec.event is None:
            assert rec.rejected is None and rec.value == raw[rec.offset]
    assert all(r.event is None for r in idle)


def test_batches_larger_than_the_socket_buffer_are_read_ahead_while_the_worker_is_busy(broker: str) -> None:
    """A batch of ~800 KB does not fit the socket's buffer (~200 KB): the child's sends
    complete while the worker is busy elsewhere, as many as its credits allow."""
    topic = f"fp-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker, max_request_size=8 << 20)
    for i in range(2000):
        producer.send(topic, value=b"x" * 4000 + str(i).encode())
    producer.flush()
    producer.close()
    consumer = ProcessConsumer(_options(broker, f"g-{topic}", max_poll_records=200), read_ahead=3)
    try:
        consumer.subscribe([topic], Recorder())
        first = _poll_until(consumer, 1)
        deadline = time.monotonic() + 15
        while consumer._inbox._queue.qsize() < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker is busy: it does not poll
        assert consumer._inbox._queue.qsize() == 3  # every credit used, nothing blocked in send
        rest = _poll_until(consumer, 2000 - len(first))
        assert [r.offset for r in first + rest] == list(range(2000))
    finally:
        consumer.close()
