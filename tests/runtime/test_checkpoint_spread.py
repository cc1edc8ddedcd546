"""spread_checkpoints: every task once per interval, one task at a time, evenly spaced."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from secmon.runtime.worker import TaskRuntime, spread_checkpoints

INTERVAL = 5_000


def _runtimes(n: int) -> list[TaskRuntime]:
    task: Any = None  # the selection reads only the runtimes' checkpoint times
    return [TaskRuntime(task=task, partition=p, topics=[]) for p in range(n)]


def _loop(runtimes: list[TaskRuntime], seconds: int, step_ms: int = 20) -> list[tuple[int, int]]:
    """Run the selection as the worker's loop does; returns (time, partition) per checkpoint."""
    done: list[tuple[int, int]] = []
    last_any = 0
    for now in range(1_000_000, 1_000_000 + seconds * 1000, step_ms):
        due = spread_checkpoints(runtimes, now, last_any, INTERVAL)
        assert len(due) <= 1
        for rt in due:
            rt.last_checkpoint_wall = last_any = now
            done.append((now, rt.partition))
    return done


def test_each_task_checkpoints_once_per_interval_and_never_two_at_once() -> None:
    runtimes = _runtimes(8)
    done = _loop(runtimes, 60)
    per_task: dict[int, list[int]] = {}
    for at, p in done:
        per_task.setdefault(p, []).append(at)
    assert sorted(per_task) == list(range(8))
    for times in per_task.values():
        gaps = [b - a for a, b in pairwise(times)]
        assert gaps and all(INTERVAL <= g <= INTERVAL + INTERVAL // 8 + 20 for g in gaps)
    # After the first round (all tasks due at once, one per spacing), evenly spread:
    spacing = [b[0] - a[0] for a, b in pairwise(done)]
    assert all(s >= INTERVAL // 8 for s in spacing)
    assert max(spacing[8:]) <= INTERVAL // 8 + 20


def test_nothing_is_due_before_the_interval() -> None:
    runtimes = _runtimes(2)
    for rt in runtimes:
        rt.last_checkpoint_wall = 10_000
    assert spread_checkpoints(runtimes, 10_000 + INTERVAL - 1, 0, INTERVAL) == []
    assert spread_checkpoints(runtimes, 10_000 + INTERVAL, 0, INTERVAL) == [runtimes[0]]
    assert spread_checkpoints([], 10**9, 0, INTERVAL) == []
