"""The task: routing, bulkheads, event-time timers, expiry, checkpoints, forwarding."""

from __future__ import annotations

import functools
from typing import Any

from secmon.contract import Finding
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState, Scope, SourceRecord
from secmon.engine.packed import PACKED
from secmon.engine.task import Task, TaskChanges, TaskHooks
from tests.helpers.events import HOUR, MINUTE, T0, decoded, ev


class Pending(KeyState):
    due: int = 0
    tx: str = ""


class DepositTimer(Detector[DetectorConfig, Pending]):
    """Test detector: a finding when a deposit is not credited within 30 minutes."""

    name = "t_deposit"
    kinds = ("deposit_delayed",)
    event_types = frozenset({"deposit.initiated", "deposit.credited"})
    State = Pending

    def on_event(self, event: Any, ctx: Context) -> None:
        key = event.account_id
        if event.event_type == "deposit.initiated":
            self.state.put(key, Pending(due=event.ts + 30 * MINUTE, tx=event.payload.tx_id), event.ts)
            ctx.schedule(key, event.ts + 30 * MINUTE)
        else:
            self.state.delete(key)
            ctx.cancel(key)

    def on_timer(self, key: str, tag: str, ctx: Context) -> None:
        st = self.state.get(key)
        assert st is not None
        ctx.emit(kind="deposit_delayed", severity="medium", dedup_key=st.tx, account_id=key,
                 first_seen_ms=st.due, last_seen_ms=st.due, evidence=[], summary="late", explanation={})


class Exploding(Detector[DetectorConfig, KeyState]):
    name = "t_boom"
    kinds = ("weak_password",)
    event_types = frozenset({"deposit.initiated"})

    def on_event(self, event: Any, ctx: Context) -> None:
        raise RuntimeError("detector bug")


class PerSource(Detector[DetectorConfig, KeyState]):
    name = "t_source"
    kinds = ("credential_stuffing",)
    event_types = frozenset({"login.failed"})
    scope = Scope.SOURCE

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.seen: list[str] = []

    @classmethod
    def source_keys(cls, event: Any, config: DetectorConfig) -> list[str]:
        return [f"ip:{event.ip}"] if event.ip else []

    def on_event(self, record: SourceRecord, ctx: Context) -> None:
        self.seen.append(record.event_id)


def _task(*detectors: Detector[Any, Any], out: list[Finding], **kw: Any) -> Task:
    return Task("t", list(detectors), emit=out.append, allowed_lateness_ms=kw.pop("lateness", 0), **kw)


def held(task: Task, changes: TaskChanges) -> dict[str, list[str]]:
    """What an account task's packed checkpoint rows hold: detector → keys with state."""
    assert task.packer is not None
    out: dict[str, list[str]] = {}
    for key, blob in sorted(changes.changed.get(PACKED, {}).items()):
        for name, value in zip(task.packer.names, task.packer.unpack(blob), strict=True):
            if value is not None:
                out.setdefault(name, []).append(key)
    return out


def test_timer_fires_when_the_watermark_passes_and_detected_at_is_the_due_time() -> None:
    out: list[Finding] = []
    task = _task(DepositTimer(DetectorConfig()), out=out, lateness=5 * MINUTE)
    task.process(decoded(ev("deposit.initiated", "a", T0)))
    task.process(decoded(ev("login.failed", "b", T0 + 34 * MINUTE)))  # watermark T0+29m
    assert out == []
    task.process(decoded(ev("login.failed", "b", T0 + 36 * MINUTE)))  # watermark T0+31m
    assert [f.kind for f in out] == ["deposit_delayed"]
    assert out[0].detected_at == "2026-11-01T00:30:00.000Z"


def test_credit_in_time_cancels_the_timer() -> None:
    out: list[Finding] = []
    task = _task(DepositTimer(DetectorConfig()), out=out)
    task.process(decoded(ev("deposit.initiated", "a", T0)))
    task.process(decoded(ev("deposit.credited", "a", T0 + 29 * MINUTE)))
    task.advance_to(T0 + 5 * HOUR)
    assert out == []


def test_a_failing_detector_is_isolated_and_counted() -> None:
    out: list[Finding] = []
    errors: list[str] = []
    task = _task(Exploding(DetectorConfig()), DepositTimer(DetectorConfig()), out=out,
                 hooks=TaskHooks(detector_error=lambda name, exc: errors.append(name)))
    task.process(decoded(ev("deposit.initiated", "a", T0)))
    task.advance_to(T0 + HOUR)
    assert errors == ["t_boom"]
    assert [f.kind for f in out] == ["deposit_delayed"]


def test_checkpoint_round_trip_restores_state_timers_and_offsets() -> None:
    out: list[Finding] = []
    task = _task(DepositTimer(DetectorConfig()), out=out)
    task.process(decoded(ev("deposit.initiated", "a", T0, {"tx_id": "tx-a"})), "wallet.events/0", 41)
    changes = task.changes()
    assert changes.meta.offsets == {"wallet.events/0": 42}
    assert held(task, changes) == {"t_deposit": ["a"]}  # one packed row per account
    assert task.changes().changed == {}  # drained

    out2: list[Finding] = []
    restored = _task(DepositTimer(DetectorConfig()), out=out2)
    rows = [(det, key, blob) for det, kv in changes.changed.items() for key, blob in kv.items()]
    assert restored.restore(changes.meta, rows) == 1
    assert restored.offsets == {"wallet.events/0": 42}
    restored.advance_to(T0 + HOUR)
    assert [f.subject for f in out2] and out2[0].finding_id == _finding_id_for("tx-a")


def _finding_id_for(tx: str) -> str:
    from secmon.detectors.base import finding_id

    return finding_id("deposit_delayed", tx)


def test_idle_keys_expire_after_a_restore_too() -> None:
    """The faust #385 bug: windows that stop expiring after restore."""
    out: list[Finding] = []
    det = DepositTimer(DetectorConfig(state_ttl_ms=HOUR))
    task = _task(det, out=out)
    task.process(decoded(ev("deposit.initiated", "a", T0)))
    changes = task.changes()
    det2 = DepositTimer(DetectorConfig(state_ttl_ms=HOUR))
    task2 = _task(det2, out=out)
    task2.restore(changes.meta, [(d, k, b) for d, kv in changes.changed.items() for k, b in kv.items()])
    assert "a" in det2.state
    task2.process(decoded(ev("login.failed", "z", T0 + 3 * HOUR)))
    assert "a" not in det2.state
    assert task2.changes().removed == {PACKED: ["a"]}


def test_forwarded_records_are_deduplicated_by_origin_sequence() -> None:
    """A record re-forwarded after a crash (same origin and seq) is counted once."""
    src = PerSource(DetectorConfig())
    dups: list[int] = []
    source_task = Task("s", [src], emit=lambda f: None, hooks=TaskHooks(duplicate_record=lambda: dups.append(1)))
    account_task = Task("a", [], emit=lambda f: None, forward=source_task.process_record,
                        source_specs={"login.failed": [(PerSource.source_keys, DetectorConfig())]})
    e1 = decoded(ev("login.failed", "a", T0, ip="203.0.113.9", event_id="f1"))
    e2 = decoded(ev("login.failed", "b", T0 + 1, ip="203.0.113.9", event_id="f2"))
    account_task.process(e1, "auth.events/0", 10)
    account_task.process(e2, "auth.events/0", 11)
    account_task.process(e1, "auth.events/0", 10)  # replay after a crash
    account_task.process(decoded(ev("login.failed", "c", T0 + 2, event_id="f3")), "auth.events/0", 12)  # no ip
    assert src.seen == ["f1", "f2"]
    assert len(dups) == 1


def test_source_task_waits_for_the_slowest_upstream() -> None:
    """A record is held until every upstream account task's watermark has passed it; a record
    already below the low watermark (late) passes at once; the low watermark never goes back."""
    from secmon.engine.task import WATERMARK

    src = PerSource(DetectorConfig())
    task = Task("s", [src], emit=lambda f: None, ordered_by_upstream=True)

    def wm(ts: int, origin: str) -> None:
        task.process_record(SourceRecord(key="", event_type=WATERMARK, event_id="", account_id="", ts=ts,
                                         origin=origin))

    def rec(eid: str, ts: int, origin: str, seq: int) -> None:
        task.process_record(SourceRecord(key="k", event_type="login.failed", event_id=eid, account_id="a",
                                         ts=ts, origin=origin, seq=seq))

    wm(T0 + HOUR, "account-0")
    wm(T0 + HOUR, "account-1")
    rec("fast", T0 + 2 * HOUR, "p0", 1)
    wm(T0 + 3 * HOUR, "account-0")
    assert src.seen == []  # account-1 is still at 1 h
    rec("slow", T0 + 90 * MINUTE, "p1", 1)
    wm(T0 + 2 * HOUR, "account-1")
    assert src.seen == ["slow", "fast"]  # released in event-time order
    assert task.stream_ms == T0 + 2 * HOUR
    rec("late", T0 + HOUR, "p1", 2)
    assert src.seen == ["slow", "fast", "late"]


def test_a_repartition_message_is_handled_as_its_records_one_by_one() -> None:
    """``process_records`` (the worker's path) against ``process_record`` per record: the
    same releases in the same order, duplicates dropped, a late record released at once."""
    from secmon.engine.task import WATERMARK

    def mark(ts: int, origin: str) -> SourceRecord:
        return SourceRecord(key="", event_type=WATERMARK, event_id="", account_id="", ts=ts, origin=origin)

    def login(eid: str, ts: int, origin: str, seq: int) -> SourceRecord:
        return SourceRecord(key="k", event_type="login.failed", event_id=eid, account_id="a", ts=ts,
                            origin=origin, seq=seq)

    messages = [
        [mark(T0 + HOUR, "account-0"), mark(T0 + HOUR, "account-1"), login("b", T0 + 2 * HOUR, "p0", 1),
         login("a", T0 + 90 * MINUTE, "p0", 2), login("a", T0 + 90 * MINUTE, "p0", 2)],
        [mark(T0 + 3 * HOUR, "account-0"), login("c", T0 + 100 * MINUTE, "p1", 1), mark(T0 + 2 * HOUR, "account-1"),
         login("late", T0 + 30 * MINUTE, "p1", 2), login("d", T0 + 150 * MINUTE, "p1", 3)],
    ]  # fmt: skip
    seen: list[list[str]] = []
    for batched in (False, True):
        dups: list[int] = []
        src = PerSource(DetectorConfig())
        task = Task("s", [src], emit=lambda f: None, ordered_by_upstream=True,
                    hooks=TaskHooks(duplicate_record=functools.partial(dups.append, 1)))
        for offset, message in enumerate(messages):
            if batched:
                task.process_records(message, "secmon.repartition/0", offset)
            else:
                for record in message:
                    task.process_record(record, "secmon.repartition/0", offset)
        assert task.offsets == {"secmon.repartition/0": 2} and dups == [1]
        seen.append(src.seen)
    assert seen[0] == seen[1] == ["a", "c", "b", "late"]


def test_source_task_release_order() -> None:
    from secmon.engine.task import WATERMARK

    src = PerSource(DetectorConfig())
    task = Task("s", [src], emit=lambda f: None, ordered_by_upstream=True)
    task.process_record(SourceRecord(key="", event_type=WATERMARK, event_id="", account_id="", ts=T0 + 5,
                                     origin="account-1"))
    for origin, ts, eid in [("p0", 30, "c"), ("p1", 10, "a"), ("p0", 40, "d"), ("p1", 20, "b")]:
        task.process_record(SourceRecord(key="k", event_type="login.failed", event_id=eid, account_id="x",
                                         ts=T0 + ts, origin=origin, seq=ts))
    task.process_record(SourceRecord(key="", event_type=WATERMARK, event_id="", account_id="", ts=T0 + 40,
                                     origin="account-0"))
    assert src.seen == []
    task.process_record(SourceRecord(key="", event_type=WATERMARK, event_id="", account_id="", ts=T0 + 25,
                                     origin="account-1"))
    assert src.seen == ["a", "b"]
    assert task.stream_ms == T0 + 25
    restored = Task("s2", [PerSource(DetectorConfig())], emit=lambda f: None, ordered_by_upstream=True)
    restored.restore(task.meta(), [])
    restored.process_record(SourceRecord(key="", event_type=WATERMARK, event_id="", account_id="", ts=T0 + 50,
                                         origin="account-1"))
    restored_source = restored.detectors[0]
    assert isinstance(restored_source, PerSource)
    assert restored_source.seen == ["c", "d"]  # held records survive a checkpoint


def _checkpoint_of_a_pending_deposit() -> tuple[Any, list[tuple[str, str, bytes]]]:
    task = _task(DepositTimer(DetectorConfig()), out=[])
    task.process(decoded(ev("deposit.initiated", "a", T0, {"tx_id": "tx-a"})), "wallet.events/0", 41)
    task.process(decoded(ev("deposit.initiated", "b", T0, {"tx_id": "tx-b"})), "wallet.events/0", 42)
    changes = task.changes()
    return changes.meta, [(d, k, b) for d, kv in changes.changed.items() for k, b in kv.items()]


def test_state_of_another_format_is_dropped_not_misread() -> None:
    """After an upgrade that changed how state is encoded, offsets and timers are kept, the
    keyed state starts afresh and the next checkpoint deletes the old rows."""
    import msgspec

    meta, rows = _checkpoint_of_a_pending_deposit()
    old = msgspec.structs.replace(meta, state_format=1)
    det = DepositTimer(DetectorConfig())
    task = _task(det, out=[])
    assert task.restore(old, rows) == 0
    assert task.offsets == {"wallet.events/0": 43} and len(det.state) == 0
    assert task.changes().removed == {PACKED: ["a", "b"]}
    task.advance_to(T0 + HOUR)  # the restored timers find no state: nothing, and no error


def test_an_unreadable_state_key_starts_afresh_and_the_others_are_restored() -> None:
    meta, rows = _checkpoint_of_a_pending_deposit()
    rows = [(d, k, b"\xc1" if k == "a" else b) for d, k, b in rows]  # 0xc1: never valid msgpack
    det = DepositTimer(DetectorConfig())
    task = _task(det, out=[])
    assert task.restore(meta, rows) == 1
    assert "b" in det.state and "a" not in det.state
    assert task.changes().removed == {PACKED: ["a"]}


class Other(DepositTimer):
    name = "t_other"


def test_format_2_rows_are_restored_and_rewritten_packed() -> None:
    """A checkpoint from before packed rows (one row per detector key): the state comes
    back, and the next checkpoint writes it packed and purges the old rows."""
    import msgspec

    enc = msgspec.msgpack.Encoder().encode
    meta, _ = _checkpoint_of_a_pending_deposit()
    meta = msgspec.structs.replace(meta, state_format=2, packed=[])
    rows = [("t_deposit", "a", enc(Pending(t=T0, due=T0 + 30 * MINUTE, tx="tx-a"))),
            ("t_other", "a", enc(Pending(t=T0, tx="other"))),
            ("t_deposit", "b", b"\xc1")]  # fmt: skip
    out: list[Finding] = []
    task = _task(DepositTimer(DetectorConfig()), Other(DetectorConfig()), out=out)
    assert task.restore(meta, rows) == 2
    changes = task.changes()
    assert changes.purge_unpacked and held(task, changes) == {"t_deposit": ["a"], "t_other": ["a"]}
    assert not task.changes().purge_unpacked  # once
    task.advance_to(T0 + HOUR)
    assert [f.finding_id for f in out] == [_finding_id_for("tx-a")]


def test_packed_rows_survive_a_detector_enabled_or_disabled() -> None:
    """Packed rows are positional; the checkpoint names the layout, so a restore under
    another set of detectors moves each state to its detector and drops the others'."""
    task = _task(Other(DetectorConfig()), DepositTimer(DetectorConfig()), out=[])
    task.process(decoded(ev("deposit.initiated", "a", T0, {"tx_id": "tx-a"})))
    changes = task.changes()
    assert changes.meta.packed == ["t_other", "t_deposit"]
    rows = [(d, k, b) for d, kv in changes.changed.items() for k, b in kv.items()]
    out: list[Finding] = []
    det = DepositTimer(DetectorConfig())
    restored = _task(det, Exploding(DetectorConfig()), out=out)  # t_other gone, t_boom new
    assert restored.restore(changes.meta, rows) == 1 and "a" in det.state
    again = restored.changes()
    assert held(restored, again) == {"t_deposit": ["a"]} and again.meta.packed == ["t_deposit", "t_boom"]
    restored.advance_to(T0 + HOUR)
    assert [f.finding_id for f in out] == [_finding_id_for("tx-a")]


def test_a_packed_task_counts_one_row_per_account_whatever_number_of_detectors_changed_it() -> None:
    """The worker checkpoints early on rows to write (``engine.checkpoint_max_changes``): an
    account task writes one packed row per account, so three detectors changing one account
    are one row, and a deleted account is one row to delete."""
    task = _task(DepositTimer(DetectorConfig()), Other(DetectorConfig()), out=[])
    for account in ("a", "b"):
        task.process(decoded(ev("deposit.initiated", account, T0, {"tx_id": f"tx-{account}"})))
    assert task.pending_changes() == 4  # the cheap bound: per detector
    assert task.pending_rows() == 2
    task.changes()
    assert task.pending_changes() == task.pending_rows() == 0
    task.process(decoded(ev("deposit.credited", "a", T0 + MINUTE, {"tx_id": "tx-a"})))
    assert task.pending_rows() == 1  # "a" deleted by both detectors: one row to delete
    assert task.changes().removed == {PACKED: ["a"]}


def test_a_task_without_checkpoints_can_forget_what_changed() -> None:
    """A replay keeps no record of changed keys (it would name every key ever touched)."""
    task = _task(DepositTimer(DetectorConfig()), out=[])
    task.process(decoded(ev("deposit.initiated", "a", T0, {"tx_id": "tx-a"})))
    assert task.pending_rows() == 1
    task.forget_changes()
    assert task.pending_changes() == 0 and "a" in task.by_name["t_deposit"].state
