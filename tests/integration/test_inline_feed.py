"""The inline feed: findings leave from the worker thread right after their commit, and each
reaches the topic once whatever happens — acknowledged, failed, or a crash before or after
the send (the dispatcher's recovery reconciles against the topic)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaTimeoutError
from sqlalchemy import Engine

from secmon.alerts.dispatcher import Dispatcher
from secmon.alerts.sinks.kafka_topic import KafkaTopicSink
from secmon.config import KafkaConfig
from secmon.metrics import Metrics
from secmon.runtime.commit import FINDINGS_CHANNEL, BatchCommitter, FeedEffects
from secmon.runtime.inline_feed import InlineFeed
from secmon.sources.kafka import make_consumer, make_producer
from secmon.store.checkpoints import CheckpointStore
from secmon.store.db import open_database
from secmon.store.outbox import INFLIGHT, PENDING, SENT, Outbox
from tests.alerts.conftest import finding

pytestmark = [pytest.mark.integration]


class _Setup:
    def __init__(self, broker: str, tmp_path: Path) -> None:
        self.topic = f"feed-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=broker)
        admin.create_topics([NewTopic(self.topic, num_partitions=2, replication_factor=1)])
        admin.close()
        self.broker = broker
        self.cfg = KafkaConfig(bootstrap_servers=broker)
        self.engine: Engine = open_database(f"sqlite:///{tmp_path / 'o.db'}")
        self.producer = make_producer(self.cfg)
        self.metrics = Metrics()

    def committer(self, producer: Any = None, worker: str = "w1") -> tuple[BatchCommitter, InlineFeed, Dispatcher]:
        dispatcher = self.dispatcher(worker)
        inline = InlineFeed(producer or self.producer, {FINDINGS_CHANNEL: self.topic}, worker, self.metrics,
                            busy=dispatcher.hold)  # fmt: skip
        committer = BatchCommitter(self.engine, CheckpointStore(self.engine, "t"), [FeedEffects(inline)], inline)
        return committer, inline, dispatcher

    def dispatcher(self, worker: str, clock: list[int] | None = None) -> Dispatcher:
        sink = KafkaTopicSink(FINDINGS_CHANNEL, self.topic, self.producer, lambda: make_consumer(self.cfg, group=False))
        kwargs: dict[str, Any] = {"clock": lambda: clock[0]} if clock is not None else {}
        return Dispatcher(Outbox(self.engine, worker), {FINDINGS_CHANNEL: sink}, self.metrics, lease_ms=1_000, **kwargs)

    def statuses(self) -> dict[str, int]:
        return {status: n for (channel, status), n in Outbox(self.engine, "x").counts().items()
                if channel == FINDINGS_CHANNEL}  # fmt: skip

    def topic_ids(self) -> list[str]:
        c = KafkaConsumer(bootstrap_servers=self.broker, group_id=None, enable_auto_commit=False)
        tps = [TopicPartition(self.topic, p) for p in range(2)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = sum(c.end_offsets(tps).values())
        out: list[str] = []
        while len(out) < end:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(f"{d['finding_id']}:{d['revision']}" for d in (orjson.loads(r.value) for r in recs))
        c.close()
        return out


@pytest.fixture
def setup(broker: str, tmp_path: Path) -> Any:
    s = _Setup(broker, tmp_path)
    yield s
    s.producer.close()


def _findings(n: int, tag: str) -> list[Any]:
    return [finding("brute_force", f"acct-{tag}-{i}") for i in range(n)]


def _wanted(findings: list[Any]) -> list[str]:
    return sorted(f"{f.finding_id}:{f.revision}" for f in findings)


def test_sent_after_commit_and_settled_in_the_next(setup: _Setup) -> None:
    committer, inline, _ = setup.committer()
    batch = _findings(5, "a")
    assert len(committer.commit(batch, [], None, now_ms=1_000)) == 5
    assert setup.statuses() == {INFLIGHT: 5}  # claimed by this worker: no dispatcher takes them
    setup.producer.flush()
    assert inline.wait_outcomes(10)
    assert committer.has_outcomes()
    committer.commit([], [], None, now_ms=2_000)  # a batch with nothing else still settles them
    assert setup.statuses() == {SENT: 5}
    assert not committer.has_outcomes()
    assert sorted(setup.topic_ids()) == _wanted(batch)
    sent = setup.metrics.registry.get_sample_value("secmon_sink_deliveries_total",
                                                   {"channel": FINDINGS_CHANNEL, "outcome": "sent"})  # fmt: skip
    assert sent == 5
    # A replay of the same batch (after a restart) is gated: nothing new, nothing sent.
    assert committer.commit(batch, [], None, now_ms=3_000) == []
    setup.producer.flush()
    assert sorted(setup.topic_ids()) == _wanted(batch)


def test_a_crash_after_the_send_is_reconciled_not_resent(setup: _Setup) -> None:
    committer, inline, _ = setup.committer(worker="dead")
    batch = _findings(4, "b")
    committer.commit(batch, [], None, now_ms=1_000)
    setup.producer.flush()
    assert inline.wait_outcomes(10)
    # The worker dies here: its acknowledgements were never written.
    assert setup.statuses() == {INFLIGHT: 4}
    clock = [10_000_000]
    successor = setup.dispatcher("successor", clock)
    assert successor.recover() == 4
    assert setup.statuses() == {SENT: 4}
    assert successor.run_once() == 0
    assert sorted(setup.topic_ids()) == _wanted(batch)


def test_a_crash_before_the_send_is_delivered_by_the_dispatcher(setup: _Setup) -> None:
    _, inline, _ = setup.committer(worker="dead")
    batch = _findings(3, "c")
    with setup.engine.begin() as conn:  # the batch transaction commits ...
        FeedEffects(inline).apply(conn, batch, now_ms=1_000)
    # ... and the worker dies before send_staged.
    clock = [10_000_000]
    successor = setup.dispatcher("successor", clock)
    assert successor.recover() == 3
    assert setup.statuses() == {PENDING: 3}
    assert successor.run_once() == 3
    assert sorted(setup.topic_ids()) == _wanted(batch)


class _RefusingProducer:
    """The real producer, except that sends of the keys in ``refuse`` raise (a full buffer)."""

    def __init__(self, inner: KafkaProducer, refuse: set[bytes]) -> None:
        self.inner = inner
        self.refuse = refuse

    def send(self, topic: str, **kwargs: Any) -> Any:
        if kwargs.get("key") in self.refuse:
            raise KafkaTimeoutError("buffer full (test)")
        return self.inner.send(topic, **kwargs)


def test_a_failed_send_goes_back_to_the_dispatcher(setup: _Setup) -> None:
    batch = _findings(4, "d")
    refused = {batch[1].finding_id.encode()}
    committer, inline, dispatcher = setup.committer(_RefusingProducer(setup.producer, refused))
    committer.commit(batch, [], None, now_ms=1_000)
    setup.producer.flush()
    assert inline.wait_outcomes(10)
    committer.commit([], [], None, now_ms=2_000)
    assert setup.statuses() == {SENT: 3, PENDING: 1}
    assert dispatcher.recover(all_inflight=True) == 0  # nothing is left in flight
    assert dispatcher.run_once() == 1
    assert setup.statuses() == {SENT: 4}
    assert sorted(setup.topic_ids()) == _wanted(batch)


def test_rows_being_sent_inline_are_left_alone_by_recovery(setup: _Setup) -> None:
    committer, inline, dispatcher = setup.committer()
    with setup.engine.begin() as conn:
        FeedEffects(inline).apply(conn, _findings(2, "e"), now_ms=1_000)
    inline.send_staged()
    assert dispatcher.recover(all_inflight=True) == 0  # held: the worker is sending them
    setup.producer.flush()
    assert inline.wait_outcomes(10)
    committer.commit([], [], None, now_ms=2_000)
    assert setup.statuses() == {SENT: 2}


def test_a_restarted_worker_with_the_same_id_recovers_its_rows_at_once(setup: _Setup) -> None:
    _, inline, _ = setup.committer(worker="pod-0")
    batch = _findings(2, "f")
    with setup.engine.begin() as conn:
        FeedEffects(inline).apply(conn, batch, now_ms=1_000)
    # pod-0 dies before sending and comes back under the same name, long before the lease ends.
    clock = [1_001]
    restarted = setup.dispatcher("pod-0", clock)
    assert restarted.recover() == 0  # within the lease, another worker's rows would wait
    assert restarted.recover(mine=True) == 2
    assert restarted.run_once() == 2
    assert sorted(setup.topic_ids()) == _wanted(batch)
