"""The in-process sliding window used for the public and log-in endpoints."""

from __future__ import annotations

from secmon.api.ratelimit import SlidingWindow


def test_the_window_slides_and_refused_hits_do_not_count() -> None:
    w = SlidingWindow(2, 1_000)
    assert w.allow("a", 0) and w.allow("a", 100) and not w.allow("a", 200)
    assert w.allow("b", 200)  # per key
    assert not w.allow("a", 999) and w.allow("a", 1_000) and w.allow("a", 1_100) and not w.allow("a", 1_150)


def test_memory_stays_bounded() -> None:
    w = SlidingWindow(1, 1_000, max_keys=10)
    for i in range(100):
        w.allow(f"k{i}", i)
    assert len(w._hits) <= 10
