"""The cold tier: idle accounts' state packed and thawed without changing a single finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from secmon.contract import Finding
from secmon.detectors.base import DetectorConfig
from secmon.detectors.registry import resolve
from secmon.engine.packed import PACKED
from secmon.engine.pipeline import Pipeline
from secmon.engine.task import Task, TaskHooks
from secmon.runtime.replay import replay
from secmon.sim.generate import MIN_ACCOUNTS, simulate, write
from tests.engine.test_task import DepositTimer, _finding_id_for, held
from tests.helpers.events import HOUR, MINUTE, T0, decoded, ev


@pytest.fixture(scope="module")
def sim_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    write(simulate(31, accounts=MIN_ACCOUNTS, days=2), out)
    return out / "events.jsonl"


def _replay(events: Path, cold_after_ms: int) -> tuple[list[bytes], list[Task]]:
    pipeline = Pipeline(resolve({}), cold_after_ms=cold_after_ms, cold_above_accounts=0)  # freeze at any size
    tasks: list[Task] = []
    build = pipeline.account_task

    def keep(*args: Any, **kw: Any) -> Task:
        tasks.append(build(*args, **kw))
        return tasks[-1]

    pipeline.account_task = keep  # type: ignore[method-assign]
    result = replay([events], pipeline)
    return [msgspec.json.encode(f) for f in result.findings], tasks


def test_replay_finds_exactly_the_same_with_accounts_frozen_and_thawed(sim_events: Path) -> None:
    """Every kind of account state (logins, 2FA, deposits with timers, transaction profiles,
    takeover sequences) goes cold and comes back across two simulated days."""
    reference, _ = _replay(sim_events, cold_after_ms=0)
    for cold_after_ms in (10 * MINUTE, MINUTE):
        findings, (task,) = _replay(sim_events, cold_after_ms)
        assert task.cold is not None and len(task.cold) >= MIN_ACCOUNTS // 10  # the tier was in use
        assert findings == reference, f"cold_after_ms={cold_after_ms}"


def _cold_task(det: DepositTimer, out: list[Finding], **kw: Any) -> Task:
    return Task("t", [det], emit=out.append, allowed_lateness_ms=0, cold_after_ms=10 * MINUTE, **kw)


def _idle_for(task: Task, until_ms: int) -> None:
    """Other accounts' events every minute, a batch end after each (generations close)."""
    t = task.stream_ms
    while t < until_ms:
        t += MINUTE
        task.process(decoded(ev("login.failed", "other", t)))
        task.end_batch()


def test_a_task_with_few_accounts_freezes_none_until_it_grows_past_the_threshold() -> None:
    """Below ``cold_above_accounts`` freezing would only cost CPU, and so would noting who was
    seen.  Past it, every account holding state counts as seen once, and the ones idle for the
    whole next generation are frozen at its end."""
    det = DepositTimer(DetectorConfig())
    task = _cold_task(det, [], cold_above_accounts=3)
    cold = task.cold
    assert cold is not None
    for i, account in enumerate(("a", "b", "c")):
        task.process(decoded(ev("deposit.initiated", account, T0 + i, {"tx_id": f"tx-{account}"})))
    task.end_batch()
    _idle_for(task, T0 + 40 * MINUTE)  # four generations: a, b, c idle all along
    assert not cold.values and all(a in det.state for a in "abc")
    assert not cold.tracking and not cold.seen  # small: nobody noted
    task.process(decoded(ev("deposit.initiated", "d", task.stream_ms + 1, {"tx_id": "tx-d"})))
    task.end_batch()
    assert cold.hot_accounts() == 4
    _idle_for(task, task.stream_ms + 5 * MINUTE)  # the generation ends: past the threshold
    assert cold.tracking and not cold.values
    task.process(decoded(ev("deposit.initiated", "d", task.stream_ms + 1, {"tx_id": "tx-d2"})))
    _idle_for(task, task.stream_ms + 5 * MINUTE)
    # a, b and c went cold; d, used meanwhile, stays: alone hot, it leaves the task small again.
    assert set(cold.values) == set("abc") and not any(a in det.state for a in "abc") and "d" in det.state
    assert cold.tracking  # frozen accounts must thaw on their next event


def test_noting_stops_once_nothing_is_frozen_and_the_task_is_small() -> None:
    det = DepositTimer(DetectorConfig())
    task = _cold_task(det, [], cold_above_accounts=1)
    cold = task.cold
    assert cold is not None
    for i, account in enumerate(("a", "b")):
        task.process(decoded(ev("deposit.initiated", account, T0 + i, {"tx_id": f"tx-{account}"})))
    task.end_batch()
    _idle_for(task, T0 + 20 * MINUTE)
    assert set(cold.values) == {"a", "b"}
    task.process(decoded(ev("deposit.credited", "a", task.stream_ms + 1, {"tx_id": "tx-a"})))  # thawed, done
    task.process(decoded(ev("deposit.credited", "b", task.stream_ms + 1, {"tx_id": "tx-b"})))
    assert not cold.values and cold.tracking
    _idle_for(task, task.stream_ms + 5 * MINUTE)
    assert not cold.tracking and not cold.seen


def test_a_small_task_does_not_note_every_account_it_ever_saw() -> None:
    """Accounts come and go below the threshold: the ones whose state expired are forgotten."""
    det = DepositTimer(DetectorConfig(state_ttl_ms=HOUR))
    task = _cold_task(det, [], cold_above_accounts=3)
    cold = task.cold
    assert cold is not None
    for i in range(40):  # a new account every 30 min, each gone an hour later
        ts = T0 + i * 30 * MINUTE
        task.process(decoded(ev("deposit.initiated", f"acct-{i}", ts, {"tx_id": f"tx-{i}", "network": "BTC"})))
        task.process(decoded(ev("deposit.credited", f"acct-{i}", ts + MINUTE, {"tx_id": f"tx-{i}"})))
        task.end_batch()
    assert not cold.values and cold.hot_accounts() <= 3
    assert len(cold._previous) <= 2 * 3 + 1  # not 40


def test_a_frozen_account_thaws_for_its_timer() -> None:
    out: list[Finding] = []
    det = DepositTimer(DetectorConfig())
    task = _cold_task(det, out)
    task.process(decoded(ev("deposit.initiated", "a", T0, {"tx_id": "tx-a"})))
    task.end_batch()
    _idle_for(task, T0 + 20 * MINUTE)
    assert "a" not in det.state and "a" in task.cold.values  # type: ignore[union-attr]
    _idle_for(task, T0 + 31 * MINUTE)
    assert [f.kind for f in out] == ["deposit_delayed"] and "a" in det.state


def test_a_change_frozen_before_its_checkpoint_is_still_written() -> None:
    det = DepositTimer(DetectorConfig())
    task = _cold_task(det, [])
    task.process(decoded(ev("deposit.initiated", "a", T0, {"tx_id": "tx-a"})))
    task.end_batch()
    _idle_for(task, T0 + 20 * MINUTE)
    assert "a" not in det.state and task.pending_changes() == 1
    changes = task.changes()
    out: list[Finding] = []
    restored = _cold_task(DepositTimer(DetectorConfig()), out)
    restored.restore(changes.meta, [(d, k, b) for d, kv in changes.changed.items() for k, b in kv.items()])
    restored.advance_to(T0 + 31 * MINUTE)
    assert [f.finding_id for f in out] == [_finding_id_for("tx-a")]


class ShortLived(DepositTimer):
    name = "t_short"


def _two_ttls(**kw: Any) -> tuple[Task, DepositTimer, DepositTimer]:
    """Two detectors holding state for account "a": one for an hour, one for a day."""
    short, long = ShortLived(DetectorConfig(state_ttl_ms=HOUR)), DepositTimer(DetectorConfig(state_ttl_ms=24 * HOUR))
    task = Task("t", [short, long], emit=lambda f: None, allowed_lateness_ms=0, cold_after_ms=10 * MINUTE, **kw)
    task.process(decoded(ev("login.failed", "a", T0)))
    short.state.put("a", short.State(tx="short"), T0)
    long.state.put("a", long.State(tx="long"), T0)
    task.end_batch()
    task.changes()
    _idle_for(task, T0 + 30 * MINUTE)
    assert "a" in task.cold.values and task.state_keys() == 2  # type: ignore[union-attr]
    return task, short, long


def test_a_key_past_its_ttl_is_dropped_when_thawed_and_the_others_come_back() -> None:
    task, short, long = _two_ttls()
    _idle_for(task, T0 + 2 * HOUR)
    task.process(decoded(ev("login.failed", "a", task.stream_ms + MINUTE)))
    assert "a" not in short.state and "a" in long.state
    changes = task.changes()
    assert held(task, changes) == {"t_deposit": ["a"]} and not changes.removed  # rewritten without it


def test_frozen_keys_expire_and_the_checkpoint_deletes_them() -> None:
    expired: list[tuple[str, int]] = []
    task, _, _ = _two_ttls(hooks=TaskHooks(keys_expired=lambda name, n: expired.append((name, n))))
    _idle_for(task, T0 + 25 * HOUR)
    assert "a" not in task.cold.values  # type: ignore[union-attr]
    assert ("t_short", 1) in expired and ("t_deposit", 1) in expired
    changes = task.changes()
    assert changes.removed == {PACKED: ["a"]} and "a" not in changes.changed.get(PACKED, {})
    assert task.state_keys() == 0


def test_a_restore_loads_the_state_packed_and_it_thaws_for_its_timer() -> None:
    """A restarted worker holds no more than it did: every restored key starts cold."""
    det = DepositTimer(DetectorConfig())
    task = _cold_task(det, [])
    task.process(decoded(ev("deposit.initiated", "a", T0, {"tx_id": "tx-a"})))
    task.process(decoded(ev("deposit.initiated", "b", T0 + MINUTE, {"tx_id": "tx-b"})))
    changes = task.changes()
    out: list[Finding] = []
    restored_det = DepositTimer(DetectorConfig())
    restored = _cold_task(restored_det, out)
    rows = [(d, k, b) for d, kv in changes.changed.items() for k, b in kv.items()]
    assert restored.restore(changes.meta, rows) == 2
    assert len(restored_det.state) == 0 and len(restored.cold) == 2  # type: ignore[arg-type]
    assert restored.state_keys() == 2
    restored.process(decoded(ev("deposit.credited", "b", T0 + 2 * MINUTE, {"tx_id": "tx-b"})))  # thaws b
    _idle_for(restored, T0 + 31 * MINUTE)  # a's timer thaws it
    assert [f.finding_id for f in out] == [_finding_id_for("tx-a")]


def test_an_unreadable_key_restored_into_the_cold_tier_starts_afresh() -> None:
    det = DepositTimer(DetectorConfig())
    task = _cold_task(det, [])
    task.process(decoded(ev("deposit.initiated", "a", T0, {"tx_id": "tx-a"})))
    task.process(decoded(ev("deposit.initiated", "b", T0, {"tx_id": "tx-b"})))
    changes = task.changes()
    rows = [(d, k, b"\xc1" if k == "a" else b) for d, kv in changes.changed.items() for k, b in kv.items()]
    restored = _cold_task(DepositTimer(DetectorConfig()), [])
    assert restored.restore(changes.meta, rows) == 1
    assert list(restored.cold.values) == ["b"]  # type: ignore[union-attr]
    assert restored.changes().removed == {PACKED: ["a"]}
