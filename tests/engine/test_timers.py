"""Event-time timers: order, replacement, cancellation, snapshot."""

from secmon.engine.timers import TimerService


def test_timers_fire_in_due_order_and_only_once() -> None:
    t = TimerService()
    t.schedule("d", "b", "", 200)
    t.schedule("d", "a", "", 100)
    t.schedule("d", "c", "", 300)
    assert t.pop_due(250) == (100, "d", "a", "")
    assert t.pop_due(250) == (200, "d", "b", "")
    assert t.pop_due(250) is None
    assert len(t) == 1


def test_rescheduling_replaces_and_cancel_forgets() -> None:
    t = TimerService()
    t.schedule("d", "k", "x", 100)
    t.schedule("d", "k", "x", 500)  # replaces the 100 ms timer
    t.schedule("d", "j", "", 50)
    t.cancel("d", "j", "")
    assert t.pop_due(400) is None
    assert t.pop_due(500) == (500, "d", "k", "x")


def test_snapshot_restores_live_timers_only() -> None:
    t = TimerService()
    t.schedule("d", "k", "", 10)
    t.schedule("d", "k", "", 20)
    t.schedule("e", "z", "t", 5)
    t.cancel("e", "z", "t")
    u = TimerService()
    u.restore(t.snapshot())
    assert u.snapshot() == [(20, "d", "k", "")]
