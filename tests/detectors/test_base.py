"""KeyedState: bounded per-key state, expired in order of last use."""

from __future__ import annotations

from secmon.detectors.base import KeyedState, KeyState


def test_expire_drops_idle_keys_and_keeps_a_key_used_again() -> None:
    """A key created first but put again recently survives; the idle ones go, and are reported."""
    state: KeyedState[KeyState] = KeyedState(KeyState, ttl_ms=100)
    state.put("a", KeyState(), 0)
    state.put("b", KeyState(), 10)
    state.put("c", KeyState(), 20)
    state.drain_changes()  # a checkpoint holds them: the idle ones are reported deleted
    state.put("a", state.get("a") or KeyState(), 150)  # used again
    assert state.expire(watermark_ms=125) == 2  # horizon 25: b and c are idle
    assert [k for k, _ in state.items()] == ["a"]
    assert state.drain_changes()[1] == {"b", "c"}


def test_expire_after_restore_in_any_order() -> None:
    """Keys loaded from a checkpoint in arbitrary order still expire by their last use."""
    state: KeyedState[KeyState] = KeyedState(KeyState, ttl_ms=100)
    for key, t in (("fresh", 500), ("stale", 10), ("old", 50)):
        state.load(key, KeyState(t=t))
    assert state.expire(watermark_ms=300) == 2
    assert [k for k, _ in state.items()] == ["fresh"]
    state.put("new", KeyState(), 600)
    assert state.expire(watermark_ms=650) == 1  # horizon 550: fresh (500) goes, new stays
    assert [k for k, _ in state.items()] == ["new"]


def test_pending_changes_counts_what_the_next_checkpoint_writes() -> None:
    """The worker checkpoints early once this many keys changed (``checkpoint_max_changes``)."""
    state: KeyedState[KeyState] = KeyedState(KeyState, ttl_ms=100)
    state.put("b", KeyState(), 1_000)
    state.drain_changes()  # a checkpoint holds "b"
    state.put("a", KeyState(), 1_000)
    state.put("a", KeyState(), 1_005)  # the same key twice is one row
    state.delete("b")  # a deleted key is a row to delete, not one to write
    assert state.pending_changes() == 2
    changed, removed = state.drain_changes()
    assert (list(changed), removed) == (["a"], {"b"})
    assert state.pending_changes() == 0


def test_a_finding_keeps_its_explanation_when_the_detector_state_moves_on() -> None:
    """Detectors pass lists of their own state (account_takeover's reasons); the finding is
    written at the end of the batch, after later events may have appended to them."""
    from secmon.detectors.base import make_finding

    reasons = ["login from a new device"]
    finding = make_finding(detector="d", kind="account_takeover", severity="high", dedup_key="k", account_id="a",
                           first_seen_ms=0, last_seen_ms=0, detected_at_ms=0, evidence=[], summary="s",
                           explanation={"risky_access": {"why": reasons}})
    reasons.append("login from a new country")
    assert finding.explanation == {"risky_access": {"why": ["login from a new device"]}}


def test_a_key_created_and_deleted_between_checkpoints_costs_no_row() -> None:
    """No checkpoint holds it, so there is nothing to delete; a key a checkpoint holds is
    deleted, and one deleted and created again is deleted and written."""
    state: KeyedState[KeyState] = KeyedState(KeyState, ttl_ms=100)
    t = 1_000  # event times are epoch ms: a new state's stamp (0) is always old
    state.put("brief", KeyState(), t)
    state.delete("brief")
    assert state.pending_changes() == 0 and state.drain_changes() == ({}, set())
    state.put("kept", KeyState(), t + 10)
    state.put("again", KeyState(), t + 10)
    state.drain_changes()  # a checkpoint now holds both
    state.delete("kept")
    state.delete("again")
    state.put("again", KeyState(), t + 20)
    state.delete("again")  # created since the drain, but over a key the checkpoint holds
    state.put("again", KeyState(), t + 30)
    changed, removed = state.drain_changes()
    assert (list(changed), removed) == (["again"], {"kept", "again"})
    state.put("late", KeyState(), t + 40)
    assert state.expire(watermark_ms=t + 200) == 2  # "again" and "late" go
    assert state.drain_changes() == ({}, {"again"})  # "late" came and went unseen
