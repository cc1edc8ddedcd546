"""A task: the detectors of one partition, their state, stream time and timers.

Kafka Streams' unit of work.  An *account task* owns input partition ``p`` of all three
co-partitioned input topics and runs the account-scope detectors; a *source task* owns
partition ``p`` of the internal repartition topic and runs the source-scope detectors (IP,
subnet, ASN, platform-wide keys).  The same class serves both, and the same code runs in
``secmon replay`` (one task of each, wired in-process) and in the Kafka worker.

The task is the detectors' :class:`~secmon.detectors.base.Context`.  It isolates detector
failures (one bad detector is counted and skipped; the others go on), drives timers from the
watermark, expires idle keys, and produces incremental checkpoints: the keys touched since
the last one plus a small metadata record (offsets, stream time, timers).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from secmon.contract import Event, Finding, Severity, Subject
from secmon.detectors.base import STATE_FORMAT, Detector, DetectorConfig, Scope, SourceRecord, make_finding
from secmon.engine.cold import ColdTier
from secmon.engine.packed import PACKED, StatePacker
from secmon.engine.timers import TimerService

log = logging.getLogger(__name__)

SourceSpec = tuple[Callable[[Event, DetectorConfig], Iterable[str]], DetectorConfig]


#: :meth:`Task._forward_source` builds records positionally, in this field order.
_FORWARDED_FIELDS = ("key", "event_type", "event_id", "account_id", "ts", "ip", "asn", "country", "device_id",
                     "reason", "network", "amount_usd", "origin", "seq")  # fmt: skip
if SourceRecord.__struct_fields__ != _FORWARDED_FIELDS:
    raise ImportError(f"SourceRecord's fields changed: update Task._forward_source ({SourceRecord.__struct_fields__})")


#: ``SourceRecord.event_type`` of a watermark: an account task's stream time, sent to every
#: source task so that they know how far all their upstreams have got.
WATERMARK = "~watermark"


class TaskMeta(msgspec.Struct, kw_only=True):
    """The non-keyed part of a task checkpoint."""

    stream_ms: int = 0
    offsets: dict[str, int] = {}
    timers: list[tuple[int, str, str, str]] = []
    origin_hw: dict[str, int] = {}
    extra: dict[str, bytes] = {}
    #: Source tasks: the last watermark of each upstream account task, and the records
    #: received but not yet released (they wait for every upstream to pass their time).
    upstream: dict[str, int] = {}
    pending: list[SourceRecord] = []
    #: ``STATE_FORMAT`` of the keyed state written with it (absent: 1, before it existed).
    state_format: int = 1
    #: Account tasks (format 3): the detectors of its packed rows, in packing order.
    packed: list[str] = []


#: Checkpoint formats this version reads: 2 is 3 with one row per detector key.
_READABLE_FORMATS = (2, STATE_FORMAT)


@dataclass
class TaskChanges:
    """What changed since the last checkpoint: metadata plus touched and removed keys."""

    task_id: str
    meta: TaskMeta
    changed: dict[str, dict[str, bytes]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    #: Delete the task's rows that are not packed first (the first checkpoint of an account
    #: task restored from format 2 rewrites its keys packed).
    purge_unpacked: bool = False


@dataclass
class TaskHooks:
    """Callbacks into the runtime (metrics, logging); the engine itself stays I/O free."""

    detector_error: Callable[[str, BaseException], None] = lambda name, exc: None
    late_event: Callable[[], None] = lambda: None
    duplicate_record: Callable[[], None] = lambda: None
    keys_expired: Callable[[str, int], None] = lambda name, n: None


class Task:
    """Runs a set of detectors over the events of one partition."""

    def __init__(
        self,
        task_id: str,
        detectors: Sequence[Detector[Any, Any]],
        *,
        emit: Callable[[Finding], None],
        forward: Callable[[SourceRecord], None] | None = None,
        source_specs: dict[str, list[SourceSpec]] | None = None,
        allowed_lateness_ms: int = 5_000,
        expire_every_ms: int = 60_000,
        hooks: TaskHooks | None = None,
        ordered_by_upstream: bool = False,
        cold_after_ms: int = 0,
        cold_above_accounts: int = 0,
    ) -> None:
        """``ordered_by_upstream`` (live source tasks): forwarded records arrive from several
        account tasks, each at its own pace; hold them and release them in event-time order
        once every upstream's watermark has passed them, and let the task's stream time be
        the lowest upstream watermark.  Findings then do not depend on how partitions were
        interleaved, and timers never fire ahead of a slower partition.

        ``cold_after_ms`` (account tasks; 0 = never): an account idle this long in event time
        has its state packed into the cold tier (:mod:`secmon.engine.cold`) until it is used
        again, once the task holds state for more than ``cold_above_accounts`` accounts.
        Account detectors key their state by ``account_id`` for this."""
        self.task_id = task_id
        self.detectors = list(detectors)
        self.by_name = {d.name: d for d in self.detectors}
        self._emit_out = emit
        self._forward_out = forward
        self._source_specs = source_specs or {}
        self.allowed_lateness_ms = allowed_lateness_ms
        self.expire_every_ms = expire_every_ms
        self.hooks = hooks or TaskHooks()

        #: event type → (name, handler) of the detectors that want it (bound once here:
        #: looked up per event and detector otherwise).
        self.route: dict[str, list[tuple[str, Callable[[Any, Task], None]]]] = {}
        self.finding_route: dict[str, list[Detector[Any, Any]]] = {}
        for det in self.detectors:
            handlers = det.handlers()
            if set(handlers) != set(det.event_types):
                raise ValueError(f"detector {det.name}: handlers() must cover exactly its event_types")
            for et in sorted(det.event_types):
                self.route.setdefault(et, []).append((det.name, handlers[et]))
            for kind in det.finding_kinds:
                self.finding_route.setdefault(kind, []).append(det)
        self._batch_end = [d for d in self.detectors if type(d).on_batch_end is not Detector.on_batch_end]
        self._encoders = {d.name: msgspec.msgpack.Encoder() for d in self.detectors}
        self._decoders = {d.name: msgspec.msgpack.Decoder(d.State) for d in self.detectors}

        self.timers = TimerService()
        self.stream_ms = 0
        self.offsets: dict[str, int] = {}
        self.origin_hw: dict[str, int] = {}
        self._now = 0
        self._current = ""
        self._origin = ""
        self._offset = 0
        self._fwd_n = 0  # records forwarded for the current input record (seq = offset * 16 + n)
        self._last_expire = 0
        self.events_processed = 0
        self.ordered_by_upstream = ordered_by_upstream
        self.upstream: dict[str, int] = {}
        self._pending: list[tuple[int, int, SourceRecord]] = []
        self._pending_seq = 0
        self._low = 0
        # Account tasks checkpoint one packed row per key (account) for all their detectors.
        packed = bool(self.detectors) and all(d.scope is Scope.ACCOUNT for d in self.detectors)
        self.packer = StatePacker(self.detectors) if packed else None
        self._hot = [d.state.mapping() for d in self.detectors]
        #: Keys to write (or delete) at the next checkpoint whatever the detectors changed.
        self._rewrite: set[str] = set()
        self._purge_unpacked = False
        self.cold = (
            ColdTier(self.detectors, self.packer, cold_after_ms, cold_above_accounts)
            if cold_after_ms > 0 and self.packer is not None
            else None
        )

    # -- Context -------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        return self._now

    @property
    def watermark_ms(self) -> int:
        return self.stream_ms - self.allowed_lateness_ms

    def emit(
        self,
        *,
        kind: str,
        severity: Severity,
        dedup_key: str,
        account_id: str | None,
        first_seen_ms: int,
        last_seen_ms: int,
        evidence: Iterable[str],
        summary: str,
        explanation: dict[str, Any],
        subject: Subject | None = None,
        detected_at_ms: int | None = None,
        status: str = "open",
        revision: int = 0,
    ) -> Finding:
        finding = make_finding(
            detector=self._current,
            kind=kind,
            severity=severity,
            dedup_key=dedup_key,
            account_id=account_id,
            first_seen_ms=first_seen_ms,
            last_seen_ms=last_seen_ms,
            detected_at_ms=self._now if detected_at_ms is None else detected_at_ms,
            evidence=evidence,
            summary=summary,
            explanation=explanation,
            subject=subject,
            status=status,
            revision=revision,
        )
        self._emit_out(finding)
        listeners = self.finding_route.get(kind)
        if listeners:
            emitter = self._current
            for det in listeners:
                if det.name != emitter:
                    if account_id is not None:
                        self._make_hot(account_id)
                    self._call(det, det.on_finding, finding)
            self._current = emitter
        return finding

    def schedule(self, key: str, due_ms: int, tag: str = "") -> None:
        self.timers.schedule(self._current, key, tag, due_ms)

    def cancel(self, key: str, tag: str = "") -> None:
        self.timers.cancel(self._current, key, tag)

    @property
    def can_forward(self) -> bool:
        """Whether forwarded records reach source tasks (some source detector is enabled)."""
        return self._forward_out is not None

    def forward(self, record: SourceRecord) -> None:
        """Send ``record`` to the source tasks.  A record without ``origin`` gets the current
        input's origin and next sequence number, like the records the task forwards itself,
        so the source task recognises a re-forward after a crash."""
        if self._forward_out is None:
            raise RuntimeError(f"task {self.task_id} cannot forward: no source tasks are wired")
        if not record.origin and self._origin:
            record = msgspec.structs.replace(record, origin=self._origin, seq=self._next_seq())
        self._forward_out(record)

    def _next_seq(self) -> int:
        seq = self._offset * 16 + self._fwd_n
        self._fwd_n += 1
        return seq

    # -- processing ----------------------------------------------------------------------
    def process(self, event: Event, origin: str = "", offset: int = -1) -> None:
        """Handle one contract event (account tasks)."""
        ts = event.ts
        if ts > self.stream_ms:
            self.stream_ms = ts
        elif ts < self.stream_ms - self.allowed_lateness_ms:
            self.hooks.late_event()
        if origin:
            self.offsets[origin] = offset + 1
            self._origin, self._offset = origin, offset
            self._fwd_n = 0
        self.events_processed += 1
        etype = event.event_type
        cold = self.cold
        if cold is not None and cold.tracking and event.account_id not in cold.seen:
            cold.touch(event.account_id, self._last_expire)
        if self._forward_out is not None:
            specs = self._source_specs.get(etype)
            if specs:
                self._forward_source(event, etype, specs)
        targets = self.route.get(etype)
        if targets:
            self._now = ts
            for name, on_event in targets:  # _call, inlined: this runs for every event
                self._current = name
                try:
                    on_event(event, self)
                except Exception as exc:  # bulkhead: one failing detector never stops the others
                    self._failed(name, exc)
        # _fire_timers' own test, inlined: after almost every event nothing is due.
        wm = self.stream_ms - self.allowed_lateness_ms
        heap = self.timers._heap
        if (heap and heap[0][0] <= wm) or wm - self._last_expire >= self.expire_every_ms:
            self._fire_timers()

    def process_record(self, record: SourceRecord, origin: str = "", offset: int = -1) -> None:
        """Handle one forwarded record (source tasks); re-forwarded duplicates are dropped."""
        if origin:
            self.offsets[origin] = offset + 1
        if record.event_type == WATERMARK:
            if record.ts > self.upstream.get(record.origin, 0):
                self.upstream[record.origin] = record.ts
                self._release()
            return
        if record.origin:
            if record.seq <= self.origin_hw.get(record.origin, -1):
                self.hooks.duplicate_record()
                return
            self.origin_hw[record.origin] = record.seq
        if self.ordered_by_upstream:
            self._pending_seq += 1
            heapq.heappush(self._pending, (record.ts, self._pending_seq, record))
            if record.ts <= self._low:  # late: every upstream is already past it
                self._release()
            return
        self.dispatch_record(record)

    def process_records(self, records: Iterable[SourceRecord], origin: str, offset: int) -> None:
        """The records of one repartition-topic message (the live source task's input): what
        :meth:`process_record` does for each, with the input offset set once and the
        common case (a login to hold until its upstreams pass it) inlined."""
        self.offsets[origin] = offset + 1
        if not self.ordered_by_upstream:
            for record in records:
                self.process_record(record)
            return
        hw = self.origin_hw
        pending = self._pending
        push = heapq.heappush
        for record in records:
            source = record.origin
            if record.event_type == WATERMARK or not source or record.ts <= self._low:
                self.process_record(record)  # a watermark, an unsequenced or a late record
                continue
            if record.seq <= hw.get(source, -1):
                self.hooks.duplicate_record()
                continue
            hw[source] = record.seq
            self._pending_seq += 1
            push(pending, (record.ts, self._pending_seq, record))

    def _release(self) -> None:
        """Release held records up to the lowest upstream watermark, in event-time order."""
        if not self.upstream:
            return
        low = max(self._low, min(self.upstream.values()))
        self._low = low
        pending = self._pending
        while pending and pending[0][0] <= low:
            self.dispatch_record(heapq.heappop(pending)[2])
        if low > self.stream_ms:
            self.stream_ms = low
        self._fire_timers()

    def dispatch_record(self, record: SourceRecord) -> None:
        """Run the detectors on one forwarded record, now.

        :meth:`process_record` ends here; an in-process forward (``secmon replay``: one account
        task feeding one source task, in its own order, with nothing to re-forward) is wired
        straight to it, past the checks a record from Kafka needs (offsets, re-forward
        duplicates, watermarks): every login is forwarded, and those checks were a seventh of
        its forward's cost."""
        ts = record.ts
        if ts > self.stream_ms:
            self.stream_ms = ts
        self.events_processed += 1
        targets = self.route.get(record.event_type)
        if targets:
            self._now = ts
            for name, on_event in targets:  # as in process()
                self._current = name
                try:
                    on_event(record, self)
                except Exception as exc:  # bulkhead
                    self._failed(name, exc)
        wm = self.stream_ms - self.allowed_lateness_ms
        heap = self.timers._heap
        if (heap and heap[0][0] <= wm) or wm - self._last_expire >= self.expire_every_ms:
            self._fire_timers()

    def end_batch(self) -> None:
        """Run batch-end hooks (micro-batched scoring) and fire due timers."""
        for det in self._batch_end:
            self._now = self.stream_ms
            self._call(det, det.on_batch_end)
        self._fire_timers()
        if self.cold is not None:  # here: no detector holds a state object across the batch
            self.cold.end_batch(self.stream_ms)

    def advance_to(self, stream_ms: int) -> None:
        """Move stream time forward without an event (idle partition, end of a replay)."""
        if stream_ms > self.stream_ms:
            self.stream_ms = stream_ms
            self._fire_timers()

    def flush(self) -> None:
        """End of input (replay): fire every timer the data reached, ignoring lateness."""
        self.end_batch()
        saved, self.allowed_lateness_ms = self.allowed_lateness_ms, 0
        self._fire_timers()
        self.allowed_lateness_ms = saved

    def _forward_source(self, event: Event, etype: str, specs: list[SourceSpec]) -> None:
        if len(specs) == 1:  # the usual case (one source detector reads this event type)
            source_keys, config = specs[0]
            keys: Iterable[str] = source_keys(event, config)
        else:
            keys = dict.fromkeys(key for source_keys, config in specs for key in source_keys(event, config))
        forward = self._forward_out
        geo = event.geo
        for key in keys:
            seq = self._offset * 16 + self._fwd_n  # _next_seq, inlined: once per login
            self._fwd_n += 1
            # Positional, in SourceRecord's field order: a third cheaper than keywords.
            forward(  # type: ignore[misc]
                SourceRecord(
                    key, etype, event.event_id, event.account_id, event.ts, event.ip, event.asn,
                    geo.country if geo is not None else None, event.device_id,
                    getattr(event.payload, "reason", None), None, None, self._origin, seq,
                )
            )

    def _fire_timers(self) -> None:
        wm = self.stream_ms - self.allowed_lateness_ms
        timers = self.timers
        if timers._heap and timers._heap[0][0] <= wm:
            while (due := timers.pop_due(wm)) is not None:
                due_ms, det_name, key, tag = due
                det = self.by_name.get(det_name)
                if det is None:
                    continue
                self._now = due_ms
                self._make_hot(key)
                self._call(det, det.on_timer, key, tag)
        if wm - self._last_expire >= self.expire_every_ms:
            self._last_expire = wm
            for det in self.detectors:
                n = det.state.expire(wm)
                if n:
                    self.hooks.keys_expired(det.name, n)
            if self.cold is not None:
                for i, n in self.cold.expire(wm).items():
                    self.hooks.keys_expired(self.detectors[i].name, n)

    def _make_hot(self, account: str) -> None:
        """Thaw ``account`` from the cold tier before a detector uses it outside ``process``
        (a timer, another detector's finding); ``process`` inlines the same test."""
        cold = self.cold
        if cold is not None and cold.tracking and account not in cold.seen:
            cold.touch(account, self._last_expire)

    def _call(self, det: Detector[Any, Any], method: Callable[..., None], *args: Any) -> None:
        self._current = det.name
        try:
            method(*args, self)
        except Exception as exc:  # bulkhead: one failing detector never stops the others
            self._failed(det.name, exc)

    def _failed(self, name: str, exc: BaseException) -> None:
        self.hooks.detector_error(name, exc)
        log.exception("detector %s failed in task %s", name, self.task_id)

    # -- checkpoints ---------------------------------------------------------------------
    def pending_changes(self) -> int:
        """An upper bound of the state rows the next checkpoint will write (or delete),
        cheap to take: exact for a source task; a packed (account) task writes one row per
        key however many of its detectors changed it, which :meth:`pending_rows` counts."""
        return len(self._rewrite) + sum(det.state.pending_changes() for det in self.detectors)

    def pending_rows(self) -> int:
        """The state rows the next checkpoint will write (or delete), exactly (a set union
        for a packed task: take :meth:`pending_changes` first where a bound will do)."""
        if self.packer is None:
            return self.pending_changes()
        return len(self._changed_keys())

    def _changed_keys(self) -> set[str]:
        """Keys to write (or delete) at the next checkpoint, for any detector (a new set)."""
        keys = set(self._rewrite)
        for det in self.detectors:
            keys |= det.state.pending_keys()
        return keys

    def forget_changes(self) -> None:
        """Drop the record of what changed, for a task no checkpoint will drain (a replay):
        it would otherwise name every key the task ever touched (~400 B an account)."""
        self._rewrite = set()
        for det in self.detectors:
            det.state.clear_changes()

    def changes(self) -> TaskChanges:
        """Drain what changed since the last call, ready to be written with the offsets."""
        out = TaskChanges(task_id=self.task_id, meta=self.meta())
        if self.packer is not None:
            self._packed_changes(out)
            return out
        for det in self.detectors:
            changed, removed = det.state.drain_changes()
            if changed:
                enc = self._encoders[det.name].encode
                out.changed[det.name] = {k: enc(v) for k, v in changed.items()}
            if removed:
                out.removed[det.name] = sorted(removed)
        return out

    def _packed_changes(self, out: TaskChanges) -> None:
        """Every key any detector changed, as it now stands across all detectors: packed
        (the cold tier's value as it is, when the key is frozen), or deleted if none holds it."""
        assert self.packer is not None
        keys = self._changed_keys()
        self.forget_changes()
        out.purge_unpacked, self._purge_unpacked = self._purge_unpacked, False
        if not keys:
            return
        frozen = self.cold.values if self.cold is not None else {}
        hot, pack = self._hot, self.packer.pack
        rows: dict[str, bytes] = {}
        gone = []
        for key in keys:
            blob = frozen.get(key)
            if blob is None:
                values = [data.get(key) for data in hot]
                if all(v is None for v in values):
                    gone.append(key)
                    continue
                blob = pack(values)
            rows[key] = blob
        if rows:
            out.changed[PACKED] = rows
        if gone:
            out.removed[PACKED] = sorted(gone)

    def meta(self) -> TaskMeta:
        extra = {}
        for det in self.detectors:
            blob = det.extra_state()
            if blob is not None:
                extra[det.name] = blob
        return TaskMeta(
            state_format=STATE_FORMAT,
            stream_ms=self.stream_ms,
            offsets=dict(self.offsets),
            timers=self.timers.snapshot(),
            origin_hw=dict(self.origin_hw),
            extra=extra,
            upstream=dict(self.upstream),
            pending=[r for _, _, r in sorted(self._pending)],
            packed=self.packer.names if self.packer is not None else [],
        )

    def restore(self, meta: TaskMeta, rows: Iterable[tuple[str, str, bytes]]) -> int:
        """Load a checkpoint; returns the number of keys restored."""
        self.stream_ms = meta.stream_ms
        self._last_expire = meta.stream_ms - self.allowed_lateness_ms
        self.offsets = dict(meta.offsets)
        self.origin_hw = dict(meta.origin_hw)
        self.upstream = dict(meta.upstream)
        self._low = min(self.upstream.values()) if self.upstream else 0
        self._pending = []
        for record in meta.pending:
            self._pending_seq += 1
            heapq.heappush(self._pending, (record.ts, self._pending_seq, record))
        self.timers.restore([t for t in meta.timers if t[1] in self.by_name])
        for name, blob in meta.extra.items():
            if name in self.by_name:
                self.by_name[name].restore_extra_state(blob)
        if meta.state_format not in _READABLE_FORMATS:
            return self._drop_state(rows, f"state format {meta.state_format}, this version reads {STATE_FORMAT}")
        if self.packer is not None:
            n, bad = self._restore_packed(meta, rows)
        else:
            n, bad = 0, 0
            for det_name, key, blob in rows:
                det = self.by_name.get(det_name)
                if det is None:
                    continue
                try:
                    det.state.load(key, self._decoders[det_name].decode(blob))
                    n += 1
                except (msgspec.DecodeError, msgspec.ValidationError):
                    det.state.forget(key)
                    bad += 1
        if bad:
            log.warning("task %s: %d state keys could not be read and start afresh", self.task_id, bad)
        return n

    def _restore_packed(self, meta: TaskMeta, rows: Iterable[tuple[str, str, bytes]]) -> tuple[int, int]:
        """An account task's rows: packed ones (format 3) as they are, one per detector key
        (format 2) packed here and rewritten at the next checkpoint.  Returns the detector
        keys restored and the rows unreadable (deleted at the next checkpoint)."""
        assert self.packer is not None
        same_layout = meta.packed == self.packer.names
        read = None if same_layout else self.packer.reader(meta.packed)
        packed: list[tuple[str, bytes]] = []
        legacy: dict[str, list[Any]] = {}
        index = {d.name: i for i, d in enumerate(self.detectors)}
        bad = 0
        for det_name, key, blob in rows:
            if det_name == PACKED:
                if read is None:
                    packed.append((key, blob))
                    continue
                try:  # written with other detectors enabled: moved to this layout
                    legacy[key] = read(blob)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    self._rewrite.add(key)
                    bad += 1
                continue
            self._purge_unpacked = True  # a format 2 row: all of them go at the next checkpoint
            i = index.get(det_name)
            if i is None:
                continue
            try:
                value = self._decoders[det_name].decode(blob)
            except (msgspec.DecodeError, msgspec.ValidationError):
                bad += 1
                continue
            legacy.setdefault(key, [None] * len(self.detectors))[i] = value
        for key, values in legacy.items():  # written again, packed in this layout
            self._rewrite.add(key)
            if any(v is not None for v in values):
                packed.append((key, self.packer.pack(values)))
        if self.cold is not None:  # straight into the cold tier: never all of it unpacked
            n, unreadable = self.cold.load(packed)
        else:
            n, unreadable = 0, []
            for key, blob in packed:
                try:
                    states = self.packer.unpack(blob)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    unreadable.append(key)
                    continue
                for det, value in zip(self.detectors, states, strict=True):
                    if value is not None:
                        det.state.load(key, value)
                        n += 1
        self._rewrite.update(unreadable)  # neither hot nor cold: deleted
        return n, bad + len(unreadable)

    def _drop_state(self, rows: Iterable[tuple[str, str, bytes]], why: str) -> int:
        """A checkpoint's keyed state this version cannot read: deleted at the next checkpoint."""
        n = 0
        for det_name, key, _ in rows:
            if self.packer is not None:  # rewritten as they stand (nothing): deleted
                self._purge_unpacked |= det_name != PACKED
                self._rewrite.add(key)
                n += 1
                continue
            det = self.by_name.get(det_name)
            if det is not None:
                det.state.forget(key)
                n += 1
        log.warning("task %s: %s; %d state keys start afresh (offsets and timers kept)", self.task_id, why, n)
        return 0

    def state_keys(self) -> int:
        """Keys held by the detectors, hot or in the cold tier."""
        return sum(len(d.state) for d in self.detectors) + (self.cold.keys if self.cold is not None else 0)

    @property
    def scope(self) -> Scope:
        return self.detectors[0].scope if self.detectors else Scope.ACCOUNT
