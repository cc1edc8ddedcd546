"""The Kafka worker: consume, decode, merge by event time, detect, commit, repeat.

One worker is one consumer-group member.  For every input partition *p* it owns (all three
co-partitioned input topics), it runs an account task; for every partition *q* of the
repartition topic, a source task.  Per poll batch:

1. decode each record (bad ones become dead letters, the service goes on);
2. release input events in event-time order per task (:class:`TimeMerger`) into the tasks;
   forwarded source records go to the repartition topic, keyed by source key;
3. end the batch (micro-batched scoring, timers), advance idle partitions by the wall clock;
4. commit the batch (:class:`BatchCommitter`): findings gate + effects + dead letters, and
   a task's checkpoint when one is due (each task every ``checkpoint_interval_ms``, one task
   at a time; an account task's after flushing the producer, so forwarded records are
   durable before their input offsets are); the committer's
   :class:`InlineFeed` then sends the batch's feed rows and settles the earlier ones;
5. commit the checkpointed offsets to Kafka (for lag monitoring and as a fallback).

On assignment a task restores its checkpoint and the consumer seeks to its offsets; on
revocation and on shutdown every task is checkpointed first.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from kafka import KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from secmon.clock import wall_ms
from secmon.config import Config
from secmon.contract import BadRecord, EventDecoder, Finding
from secmon.engine.deadletter import DeadLetter
from secmon.engine.merge import InputState, TimeMerger
from secmon.engine.pipeline import Pipeline
from secmon.engine.task import Task, TaskHooks
from secmon.metrics import Metrics
from secmon.runtime.commit import BatchCommitter
from secmon.runtime.heap import settle_long_lived
from secmon.runtime.repartition import Repartitioner, decode_batch
from secmon.sources.fetch_process import FetchedRecord, ProcessConsumer
from secmon.sources.kafka import GroupConsumer, check_copartitioned, partition_counts
from secmon.store.checkpoints import CheckpointStore

log = logging.getLogger(__name__)


@dataclass
class TaskRuntime:
    """A task plus what the worker tracks for it: input offsets, buffers, idleness."""

    task: Task
    partition: int
    topics: list[str]
    merger: TimeMerger | None = None
    fetched: dict[str, int] = field(default_factory=dict)  # topic → next offset to fetch
    last_event_wall: int = 0
    idle_base_stream: int = 0
    touched: bool = False
    last_checkpoint_wall: int = 0
    #: Inputs whose start position is not known yet (resolved in the poll loop, not in the
    #: rebalance listener, where kafka-python forbids blocking calls).
    unresolved: set[str] = field(default_factory=set)
    watermark_sent: int = 0
    watermark_sent_wall: int = 0

    def origin(self, topic: str) -> str:
        return f"{topic}/{self.partition}"

    def checkpoint_offsets(self) -> dict[str, int]:
        """Per input: the first offset not yet fully handled (buffered events excluded)."""
        out = dict(self.task.offsets)
        for topic in self.topics:
            head = self.merger.head_offset(topic) if self.merger is not None else None
            if head is not None:
                out[self.origin(topic)] = head
            elif topic in self.fetched:
                out[self.origin(topic)] = self.fetched[topic]
        return out


class Worker:
    """Runs the detection pipeline as one member of the consumer group."""

    def __init__(
        self,
        config: Config,
        pipeline: Pipeline,
        committer: BatchCommitter,
        checkpoints: CheckpointStore,
        metrics: Metrics,
        consumer_factory: Callable[[], GroupConsumer],
        producer: KafkaProducer,
        *,
        on_committed: Callable[[list[Finding]], None] = lambda new: None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.committer = committer
        self.checkpoints = checkpoints
        self.metrics = metrics
        self.consumer_factory = consumer_factory
        self.producer = producer
        self.on_committed = on_committed
        self.clock = clock
        topics = config.kafka.topics
        self.input_topics = list(topics.inputs())
        self.repartition_topic = topics.repartition
        self.decoder = EventDecoder(config.engine.max_event_bytes)
        self.account: dict[int, TaskRuntime] = {}
        self.source: dict[int, TaskRuntime] = {}
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self._findings: list[Finding] = []
        self._dead: list[DeadLetter] = []
        self._sampled_record_ms: list[int] = []
        self._last_checkpoint = 0
        self._consumer: GroupConsumer | None = None
        self._decode_record = self._record_decoder(None)
        self._paused = False
        #: Account partitions paused for being too far ahead in event time.
        self._aligned: set[int] = set()
        self._last_gauges = 0
        self.last_loop_monotonic = 0.0
        self._in_listener = False
        #: Set by an assignment: move the long-lived objects out of the collector's full
        #: passes before the next batch (secmon/runtime/heap.py).
        self._settle_heap = False
        self.partitions = 0
        self.outbox_depth: Callable[[], int] = lambda: 0
        #: Called once per poll batch with its decoded ``account.snapshot`` events, before the
        #: batch commits (the action layer remembers each account's locale from them).
        self.on_snapshots: Callable[[list[Any]], object] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        consumer = self.consumer_factory()
        self._decode_record = self._record_decoder(consumer)
        self._consumer = consumer
        eng = self.config.engine
        try:
            topics = [*self.input_topics, self.repartition_topic]
            self.partitions = check_copartitioned(partition_counts(consumer, topics))
            self.repartitioner = Repartitioner(self.producer, self.repartition_topic, self.partitions)
            consumer.subscribe(topics=topics, listener=_Listener(self))
            while not self.stopping.is_set():
                self.last_loop_monotonic = time.monotonic()
                self._apply_backpressure(consumer)
                self._align_partitions(consumer)
                batch = consumer.poll(timeout_ms=100, max_records=self.config.kafka.max_poll_records)
                if self._settle_heap:  # after an assignment, before its first batch
                    self._settle_heap = False
                    frozen, took = settle_long_lived()
                    log.info("%d long-lived objects out of the collector's way (%.0f ms)", frozen, took * 1000)
                self._resolve_positions(consumer)
                started = time.perf_counter()
                now = self.clock()
                self._handle(batch, now)
                self._advance_idle(now, eng.idle_timeout_ms)
                self._send_watermarks(now)
                self._commit(now, force=False)
                self._observe_latency()
                if batch:
                    self.metrics.batch_duration.observe(time.perf_counter() - started)
                self._refresh_gauges(consumer, now)
        finally:
            self._shutdown(consumer)

    def _shutdown(self, consumer: GroupConsumer) -> None:
        try:
            if self.account or self.source:
                self._commit(self.clock(), force=True)
            inline = self.committer.inline
            if inline is not None:  # the last batches' feed rows: wait for their acks, settle them
                inline.producer.flush(timeout=self.config.kafka.flush_timeout_s)
                inline.wait_outcomes(self.config.kafka.flush_timeout_s)
                self.committer.commit([], [], None, self.clock())
        except Exception:
            log.exception("final checkpoint failed; the gap will be replayed on restart")
        self.metrics.ready.set(0)
        self.ready.clear()
        try:
            consumer.close(autocommit=False)
        except Exception:
            log.exception("closing the consumer")

    # -- per batch -----------------------------------------------------------------------
    def _handle(self, batch: dict[TopicPartition, list[Any]], now: int) -> None:
        repartition = self.repartition_topic
        decode = self._decode_record
        consumed = self.metrics.events_consumed
        snapshots: list[Any] = []
        for tp, records in batch.items():
            if not records:
                continue
            if tp.topic == repartition:
                rt = self.source.get(tp.partition)
                if rt is None:
                    continue
                self._handle_source(rt, tp, records)
                continue
            rt = self.account.get(tp.partition)
            if rt is None:
                continue
            merger = rt.merger
            assert merger is not None
            counts: dict[str, int] = {}
            topic, origin = tp.topic, rt.origin(tp.topic)
            entries = []
            for rec in records:
                try:
                    event = decode(rec)
                except BadRecord as bad:
                    self._dead_letter(rec, bad.reason, bad.detail, bad.event_id)
                    continue
                entries.append((event.ts, origin, rec.offset, event))
                et = event.event_type
                counts[et] = counts.get(et, 0) + 1  # type: ignore[index]
                if et == "account.snapshot":
                    snapshots.append(event)
            merger.push_many(topic, entries)
            rt.fetched[topic] = records[-1].offset + 1
            for et, n in counts.items():
                consumed.labels(topic, et).inc(n)
            self._sample_record_times(records)
            rt.last_event_wall = now
        if snapshots and self.on_snapshots is not None:
            self.on_snapshots(snapshots)
        for rt in self.account.values():
            merger = rt.merger
            if merger is None or not len(merger):
                continue
            task = rt.task
            process = task.process
            input_state = self._input_state_fn(rt)
            for _, origin, offset, event in merger.pop_ready(now, input_state):
                process(event, origin, offset)
                rt.touched = True
            rt.idle_base_stream = task.stream_ms
        for rt in (*self.account.values(), *self.source.values()):
            if rt.touched:
                rt.task.end_batch()
                rt.touched = False
        if batch:
            self.metrics.last_event_timestamp.set(now / 1000)

    def _record_decoder(self, consumer: GroupConsumer | None) -> Callable[[Any], Any]:
        """Record → event, or :class:`BadRecord` (never another exception).  A fetch process
        has decoded its records already (or rejected them, with the reason): only unpack its
        result."""
        decode = self.decoder.decode_record
        if not isinstance(consumer, ProcessConsumer):
            return lambda rec: decode(rec.value)
        adopt = self.decoder.adopt

        def decode_fetched(rec: FetchedRecord) -> Any:
            if rec.event is not None:
                return adopt(rec.event)
            if rec.rejected is not None:
                raise rec.rejected.error()
            return decode(rec.value)  # an input the child did not know

        return decode_fetched

    def _handle_source(self, rt: TaskRuntime, tp: TopicPartition, records: list[Any]) -> None:
        origin = rt.origin(tp.topic)
        task = rt.task
        for rec in records:
            try:
                batch = decode_batch(rec.value)
            except msgspec.DecodeError as exc:
                self._dead_letter(rec, "bad_value", f"repartition record: {exc}", None)
                continue
            task.process_records(batch, origin, rec.offset)
        rt.fetched[tp.topic] = records[-1].offset + 1
        rt.touched = True
        rt.last_event_wall = self.clock()
        rt.idle_base_stream = task.stream_ms

    def _dead_letter(self, rec: Any, reason: str, detail: str, event_id: str | None) -> None:
        self._dead.append(
            DeadLetter.of(
                rec.value if rec.value is not None else b"",
                reason=reason,
                detail=detail,
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                key=rec.key,
                event_id=event_id,
            )
        )
        self.metrics.dead_letters.labels(reason).inc()

    def _resolve_positions(self, consumer: GroupConsumer) -> None:
        """Record where each newly assigned input starts, so its lag is known exactly."""
        for rt in self.account.values():
            if not rt.unresolved:
                continue
            for topic in list(rt.unresolved):
                tp = TopicPartition(topic, rt.partition)
                try:
                    position = consumer.position(tp)
                except Exception as exc:  # e.g. a rebalance in progress: try again next loop
                    log.debug("position of %s unknown yet: %s", tp, exc)
                    continue
                rt.fetched.setdefault(topic, position)
                rt.unresolved.discard(topic)

    def _input_state_fn(self, rt: TaskRuntime) -> Callable[[str], InputState]:
        """Whether an input with nothing buffered has more to fetch (from the high watermark
        the last fetch response reported)."""
        consumer = self._consumer
        partition = rt.partition

        def input_state(topic: str) -> InputState:
            hw = consumer.highwater(TopicPartition(topic, partition)) if consumer is not None else None
            if hw is None:
                return InputState.UNKNOWN
            fetched = rt.fetched.get(topic)
            if fetched is None:  # start position not resolved yet
                return InputState.CAUGHT_UP if hw == 0 else InputState.UNKNOWN
            return InputState.CAUGHT_UP if fetched >= hw else InputState.LAGGING

        return input_state

    def _sample_record_times(self, records: list[Any]) -> None:
        # The first and last record of each partition batch (not every record); observed
        # once the batch's effects are durable (``_observe_latency``).
        for rec in (records[0], records[-1]):
            if rec.timestamp and rec.timestamp > 0:
                self._sampled_record_ms.append(rec.timestamp)

    def _observe_latency(self) -> None:
        if not self._sampled_record_ms:
            return
        now = self.clock()
        observe = self.metrics.processing_latency.observe
        for ts in self._sampled_record_ms:
            observe(max(0, now - ts) / 1000)
        self._sampled_record_ms.clear()

    def _send_watermarks(self, now: int, min_interval_ms: int = 20) -> None:
        """Tell every source task how far each account task has got (see ``WATERMARK``).

        Sent after the batch's forwarded records on the same producer, so on each repartition
        partition a watermark follows the records it covers."""
        if not self.pipeline.has_source_detectors:
            return
        for rt in self.account.values():
            stream = rt.task.stream_ms
            if stream <= rt.watermark_sent or now - rt.watermark_sent_wall < min_interval_ms:
                continue
            self.repartitioner.watermark(rt.task.task_id, stream)
            rt.watermark_sent, rt.watermark_sent_wall = stream, now
        self.repartitioner.flush()

    def _advance_idle(self, now: int, idle_timeout_ms: int) -> None:
        """Timers must fire on idle partitions too: let stream time follow the wall clock.
        (Source tasks follow their upstreams' watermarks, which this moves too.)"""
        for rt in self.account.values():
            task = rt.task
            if task.stream_ms <= 0 or rt.last_event_wall <= 0:
                continue
            idle = now - rt.last_event_wall
            if idle >= idle_timeout_ms:
                before = len(self._findings)
                task.advance_to(rt.idle_base_stream + idle)
                if len(self._findings) != before:
                    rt.touched = True

    # -- commit --------------------------------------------------------------------------
    def _commit(self, now: int, force: bool) -> None:
        runtimes = [*self.account.values(), *self.source.values()]
        due = self._due_checkpoints(runtimes, now, force)
        findings = self._findings[:]
        self._findings.clear()
        dead = self._dead[:]
        self._dead.clear()
        changes = None
        started = time.perf_counter()
        if due:
            if any(rt.merger is not None for rt in due):  # an account task's
                self.repartitioner.flush()
                # Forwarded records durable before their inputs' offsets; bounded, so a broker
                # that is gone fails the checkpoint (replayed later) instead of hanging shutdown.
                self.producer.flush(timeout=self.config.kafka.flush_timeout_s)
            changes = []
            for rt in due:
                rt.task.offsets = rt.checkpoint_offsets()
                changes.append(rt.task.changes())
        if not findings and not dead and not changes and not self.committer.has_outcomes():
            return
        new = self.committer.commit(findings, dead, changes, now)
        for f in new:
            self.metrics.findings.labels(f.kind, f.severity).inc()
        if changes is not None:
            self.metrics.checkpoint_duration.observe(time.perf_counter() - started)
            self._last_checkpoint = now
            for rt in due:
                rt.last_checkpoint_wall = now
            self.metrics.checkpoints.inc(len(changes))
            self._commit_offsets(due)
        if new:
            self.on_committed(new)

    def _due_checkpoints(self, runtimes: list[TaskRuntime], now: int, force: bool) -> list[TaskRuntime]:
        """The tasks to checkpoint with this batch.  Each task once per
        ``engine.checkpoint_interval_ms``, but not all at once: at most one task per
        interval / tasks, the one checkpointed longest ago.  A checkpoint of every task in one
        batch stopped the loop for 27-110 ms at 10k ev/s, and every finding behind it waited
        (in two runs of three it overlapped 18-19 of the 40 slowest findings).  Tasks checkpoint
        independently (own state, own offsets; forwarded records are de-duplicated by
        sequence), as Kafka Streams' tasks commit.  Every task at once when forced
        (revocation, shutdown) or when the pending rows reach
        ``engine.checkpoint_max_changes`` (catching up, when batches are big anyway)."""
        eng = self.config.engine
        if force or _pending_rows(runtimes, eng.checkpoint_max_changes) >= eng.checkpoint_max_changes:
            return runtimes
        return spread_checkpoints(runtimes, now, self._last_checkpoint, eng.checkpoint_interval_ms)

    def _commit_offsets(self, runtimes: list[TaskRuntime]) -> None:
        """Commit the checkpointed offsets to Kafka (for lag monitoring, and as a fallback
        when no checkpoint exists).  Inside a rebalance listener kafka-python runs on its IO
        thread, where only the asynchronous commit is allowed."""
        consumer = self._consumer
        if consumer is None:
            return
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for rt in runtimes:
            for origin, offset in rt.task.offsets.items():
                topic, _, part = origin.rpartition("/")
                offsets[TopicPartition(topic, int(part))] = OffsetAndMetadata(offset, "", -1)
        if offsets:
            try:
                if self._in_listener:
                    consumer.commit_async(offsets)
                else:
                    consumer.commit(offsets)
            except Exception as exc:  # the DB checkpoint is the source of truth; this is for lag
                self.metrics.offset_commit_failures.inc()
                log.warning("offset commit failed (checkpoint is safe in the store): %s", exc)

    # -- rebalancing ---------------------------------------------------------------------
    def on_revoked(self, revoked: list[TopicPartition]) -> None:
        if not self.account and not self.source:
            return
        self.ready.clear()
        self.metrics.ready.set(0)
        self._in_listener = True
        try:
            self._commit(self.clock(), force=True)
        finally:
            self._in_listener = False
        gone = set(revoked)
        for p in list(self.account):
            if any(TopicPartition(t, p) in gone for t in self.input_topics):
                del self.account[p]
        for p in list(self.source):
            if TopicPartition(self.repartition_topic, p) in gone:
                del self.source[p]
        # Series of partitions this worker no longer owns must go, not freeze at old values.
        for tp in gone:
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        for topic in {tp.topic for tp in gone}:
            self.metrics.assigned_partitions.labels(topic).set(0)
        self.metrics.rebalances.inc()
        log.info("revoked %d partitions; checkpointed", len(revoked))

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        by_partition: dict[int, set[str]] = {}
        for tp in assigned:
            by_partition.setdefault(tp.partition, set()).add(tp.topic)
        restored = 0
        for p, topics in sorted(by_partition.items()):
            inputs = [t for t in self.input_topics if t in topics]
            if inputs and p not in self.account:
                if len(inputs) != len(self.input_topics):
                    log.error(
                        "partition %d: assigned %s but not all of %s; the assignor must co-assign "
                        "(Range assignor, equal partition counts)", p, inputs, self.input_topics,
                    )
                rt = self._new_account_runtime(p, inputs)
                restored += self._restore(rt, consumer)
                self.account[p] = rt
            if self.repartition_topic in topics and p not in self.source:
                rt = TaskRuntime(
                    task=self.pipeline.source_task(f"source-{p}", self._findings.append, ordered_by_upstream=True),
                    partition=p,
                    topics=[self.repartition_topic],
                )
                restored += self._restore(rt, consumer)
                self.source[p] = rt
        if self._paused:  # a new assignment starts unpaused; the next loop re-checks the outbox
            self._paused = False
            self.metrics.backpressure.set(0)
        self._aligned.clear()  # likewise: the next loop pauses what is still too far ahead
        for topic in {tp.topic for tp in assigned}:
            self.metrics.assigned_partitions.labels(topic).set(sum(1 for tp in assigned if tp.topic == topic))
        self._settle_heap = True  # in the loop, not here: kafka-python may run this on its I/O loop
        self.ready.set()
        self.metrics.ready.set(1)
        log.info("assigned %d partitions; restored %d state keys", len(assigned), restored)

    def _new_account_runtime(self, p: int, inputs: list[str]) -> TaskRuntime:
        task = self.pipeline.account_task(
            f"account-{p}", self._findings.append,
            self.repartitioner.add if self.pipeline.has_source_detectors else None,
        )
        return TaskRuntime(
            task=task,
            partition=p,
            topics=inputs,
            merger=TimeMerger(inputs, self.config.engine.max_task_idle_ms,
                              skew_ms=self.config.engine.merge_skew_ms, quiet_ms=self.config.engine.merge_quiet_ms),
            unresolved=set(inputs),
        )

    def _restore(self, rt: TaskRuntime, consumer: GroupConsumer) -> int:
        loaded = self.checkpoints.load(rt.task.task_id)
        if loaded is None:
            return 0
        meta, rows = loaded
        n = rt.task.restore(meta, rows)
        rt.idle_base_stream = rt.task.stream_ms
        for topic in rt.topics:
            offset = meta.offsets.get(rt.origin(topic))
            if offset is not None:
                consumer.seek(TopicPartition(topic, rt.partition), offset)
                rt.fetched[topic] = offset
                rt.unresolved.discard(topic)
        return n

    # -- housekeeping --------------------------------------------------------------------
    def _apply_backpressure(self, consumer: GroupConsumer) -> None:
        limit = self.config.delivery.max_pending
        depth = self.outbox_depth()
        if not self._paused and depth > limit:
            consumer.pause(*consumer.assignment())
            self._paused = True
            self.metrics.backpressure.set(1)
            log.warning("outbox holds %d undelivered messages (> %d): pausing consumption", depth, limit)
        elif self._paused and depth < limit * 0.8:
            consumer.resume(*[tp for tp in consumer.assignment() if not self._held_for_alignment(tp)])
            self._paused = False
            self.metrics.backpressure.set(0)
            log.info("outbox drained to %d: resuming consumption", depth)

    def _align_partitions(self, consumer: GroupConsumer) -> None:
        """Pause account partitions too far ahead in event time (``max_partition_skew_ms``),
        so that the slowest partition still fetching catches up; resume them once within half
        of it.  Only partitions with records left to fetch hold others back: one that is
        caught up is merely quiet.  Local to this worker (upstreams on other workers are not
        seen), off while backpressure has paused everything, and off without source detectors
        (nothing is held then, and pausing costs fetch throughput: the core pipeline alone
        ran ~25 % slower with it)."""
        skew = self.config.engine.max_partition_skew_ms
        if skew <= 0 or self._paused or len(self.account) < 2 or not self.pipeline.has_source_detectors:
            return
        low = min((rt.task.stream_ms for rt in self.account.values() if rt.task.stream_ms and self._lagging(rt)),
                  default=None)
        pause: list[TopicPartition] = []
        resume: list[TopicPartition] = []
        for p, rt in self.account.items():
            ahead = rt.task.stream_ms - low if low is not None else 0
            if p not in self._aligned and ahead > skew:
                self._aligned.add(p)
                pause.extend(TopicPartition(t, p) for t in self.input_topics)
            elif p in self._aligned and ahead <= skew // 2:
                self._aligned.discard(p)
                resume.extend(TopicPartition(t, p) for t in self.input_topics)
        if pause:
            consumer.pause(*pause)
            self.metrics.alignment_pauses.inc(len(pause) // len(self.input_topics))
        if resume:
            consumer.resume(*resume)
        self.metrics.aligned_partitions.set(len(self._aligned))

    def _lagging(self, rt: TaskRuntime) -> bool:
        """Whether any input of an account task has records not fetched yet."""
        input_state = self._input_state_fn(rt)
        return any(input_state(topic) is InputState.LAGGING for topic in rt.topics)

    def _held_for_alignment(self, tp: TopicPartition) -> bool:
        return tp.partition in self._aligned and tp.topic in self.input_topics

    def _refresh_gauges(self, consumer: GroupConsumer, now: int) -> None:
        if now - self._last_gauges < 1000:  # about once a second is plenty
            return
        self._last_gauges = now
        for rt in (*self.account.values(), *self.source.values()):
            for topic in rt.topics:
                hw = consumer.highwater(TopicPartition(topic, rt.partition))
                pos = rt.checkpoint_offsets().get(rt.origin(topic), rt.fetched.get(topic, 0))
                if hw is not None:
                    self.metrics.consumer_lag.labels(topic, str(rt.partition)).set(max(0, hw - pos))
        oldest = min((rt.last_checkpoint_wall for rt in (*self.account.values(), *self.source.values())),
                     default=now)
        self.metrics.checkpoint_age.set(max(0, now - oldest) / 1000 if oldest else 0)
        self.metrics.state_keys.labels("account").set(sum(rt.task.state_keys() for rt in self.account.values()))
        self.metrics.state_keys.labels("source").set(sum(rt.task.state_keys() for rt in self.source.values()))
        self.metrics.cold_accounts.set(sum(len(rt.task.cold) for rt in self.account.values() if rt.task.cold is not None))


def spread_checkpoints(runtimes: list[TaskRuntime], now: int, last_any: int, interval_ms: int) -> list[TaskRuntime]:
    """The task due for its checkpoint, if any: the one checkpointed longest ago, once its
    interval has passed, and no sooner than interval / tasks after the last checkpoint of
    any task (``last_any``), so that the tasks' checkpoints spread over the interval."""
    if not runtimes or now - last_any < interval_ms // len(runtimes):
        return []
    oldest = min(runtimes, key=_checkpointed_at)
    return [oldest] if now - oldest.last_checkpoint_wall >= interval_ms else []


def _checkpointed_at(rt: TaskRuntime) -> int:
    return rt.last_checkpoint_wall


def _pending_rows(runtimes: list[TaskRuntime], limit: int) -> int:
    """State rows the tasks' next checkpoint writes: the cheap upper bound while it is under
    ``limit``, then the exact count.  An account task counts an account once, however many
    detectors changed it (counting per detector checkpointed 3-5 times as often as
    ``engine.checkpoint_max_changes`` meant under load)."""
    bound = sum(rt.task.pending_changes() for rt in runtimes)
    if bound < limit:
        return bound
    return sum(rt.task.pending_rows() for rt in runtimes)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.worker.on_revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.worker.on_assigned(assigned)


def task_hooks(metrics: Metrics) -> Callable[[str], TaskHooks]:
    """Task callbacks that count into the worker's metrics."""

    def make(task_id: str) -> TaskHooks:
        return TaskHooks(
            detector_error=lambda name, exc: metrics.detector_errors.labels(name).inc(),
            late_event=metrics.late_events.inc,
            duplicate_record=metrics.duplicate_records.inc,
            keys_expired=lambda name, n: metrics.keys_expired.labels(name).inc(n),
        )

    return make
