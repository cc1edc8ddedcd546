"""The event-time merge of a task's input topics."""

from secmon.engine.merge import InputState, TimeMerger


def test_releases_in_timestamp_order_when_all_inputs_have_data() -> None:
    m = TimeMerger(["a", "b"], max_idle_ms=100)
    for ts in (1, 4, 6):
        m.push("a", ts, ts, f"a{ts}")
    for ts in (2, 3, 7):
        m.push("b", ts, ts, f"b{ts}")
    out = [item for *_, item in m.pop_ready(0, state=lambda name: InputState.UNKNOWN)]
    # b7 is held back: a is empty and not caught up, so an earlier "a" may still come.
    assert out == ["a1", "b2", "b3", "a4", "a6"]
    assert m.head_offset("b") == 7


def test_waits_for_a_lagging_input_then_gives_up_after_max_idle() -> None:
    m = TimeMerger(["a", "b"], max_idle_ms=100)
    m.push("a", 5, 0, "a5")
    assert list(m.pop_ready(1000, state=lambda name: InputState.UNKNOWN)) == []
    assert list(m.pop_ready(1050, state=lambda name: InputState.UNKNOWN)) == []
    assert [i for *_, i in m.pop_ready(1100, state=lambda name: InputState.UNKNOWN)] == ["a5"]


def test_a_caught_up_input_does_not_block() -> None:
    m = TimeMerger(["a", "b"], max_idle_ms=10_000)
    m.push("a", 5, 0, "a5")
    assert [i for *_, i in m.pop_ready(0, state=lambda name: InputState.CAUGHT_UP)] == ["a5"]


def test_a_lagging_input_holds_the_release_however_long() -> None:
    """Known unfetched records must not be overtaken (timers would fire too early)."""
    m = TimeMerger(["a", "b"], max_idle_ms=100)
    m.push("a", 5, 0, "a5")
    assert list(m.pop_ready(0, state=lambda name: InputState.LAGGING)) == []
    assert list(m.pop_ready(10_000, state=lambda name: InputState.LAGGING)) == []
    m.push("b", 3, 0, "b3")
    assert [i for *_, i in m.pop_ready(10_000, state=lambda name: InputState.LAGGING)] == ["b3"]


def test_an_input_gone_quiet_far_behind_in_event_time_holds_briefly() -> None:
    """Backfill: topic b drained at 1 h while a is at 3 h; b's producer may still be flushing
    older events, so a waits ``quiet_ms`` before overtaking it."""
    m = TimeMerger(["a", "b"], skew_ms=1_000, quiet_ms=500)
    m.push("b", 3_600_000, 0, "b1")
    m.push("a", 3 * 3_600_000, 0, "a3")
    caught_up = lambda name: InputState.CAUGHT_UP  # noqa: E731
    assert [i for *_, i in m.pop_ready(1_000, state=caught_up)] == ["b1"]
    assert list(m.pop_ready(1_200, state=caught_up)) == []
    assert [i for *_, i in m.pop_ready(1_500, state=caught_up)] == ["a3"]


def test_live_traffic_with_close_event_times_never_waits() -> None:
    m = TimeMerger(["a", "b"], skew_ms=1_000, quiet_ms=500)
    m.push("b", 10_000, 0, "b")
    m.push("a", 10_400, 0, "a")
    assert [i for *_, i in m.pop_ready(0, state=lambda name: InputState.CAUGHT_UP)] == ["b", "a"]
