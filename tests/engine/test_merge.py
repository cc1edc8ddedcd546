"""The event-time merge of a task's input topics."""

from secmon.engine.merge import TimeMerger


def test_releases_in_timestamp_order_when_all_inputs_have_data() -> None:
    m = TimeMerger(["a", "b"], max_idle_ms=100)
    for ts in (1, 4, 6):
        m.push("a", ts, ts, f"a{ts}")
    for ts in (2, 3, 7):
        m.push("b", ts, ts, f"b{ts}")
    out = [item for _, _, item in m.pop_ready(0, caught_up=lambda name: False)]
    # b7 is held back: a is empty and not caught up, so an earlier "a" may still come.
    assert out == ["a1", "b2", "b3", "a4", "a6"]
    assert m.head_offset("b") == 7


def test_waits_for_a_lagging_input_then_gives_up_after_max_idle() -> None:
    m = TimeMerger(["a", "b"], max_idle_ms=100)
    m.push("a", 5, 0, "a5")
    assert list(m.pop_ready(1000, caught_up=lambda name: False)) == []
    assert list(m.pop_ready(1050, caught_up=lambda name: False)) == []
    assert [i for _, _, i in m.pop_ready(1100, caught_up=lambda name: False)] == ["a5"]


def test_a_caught_up_input_does_not_block() -> None:
    m = TimeMerger(["a", "b"], max_idle_ms=10_000)
    m.push("a", 5, 0, "a5")
    assert [i for _, _, i in m.pop_ready(0, caught_up=lambda name: name == "b")] == ["a5"]
