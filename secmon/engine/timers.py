"""Event-time timers of one task: fire when the watermark passes their due time."""

from __future__ import annotations

import heapq
from itertools import count

TimerKey = tuple[str, str, str]  # (detector, key, tag)


class TimerService:
    """A heap of due times with replace/cancel by (detector, key, tag).

    Cancelled or replaced entries stay in the heap and are skipped when popped (lazy
    deletion keeps ``schedule`` O(log n)).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str, str, str]] = []
        self._live: dict[TimerKey, int] = {}
        self._seq = count()

    def schedule(self, detector: str, key: str, tag: str, due_ms: int) -> None:
        self._live[(detector, key, tag)] = due_ms
        heapq.heappush(self._heap, (due_ms, next(self._seq), detector, key, tag))

    def cancel(self, detector: str, key: str, tag: str) -> None:
        self._live.pop((detector, key, tag), None)

    def next_due(self) -> int | None:
        while self._heap:
            due, _, det, key, tag = self._heap[0]
            if self._live.get((det, key, tag)) == due:
                return due
            heapq.heappop(self._heap)
        return None

    def pop_due(self, watermark_ms: int) -> tuple[int, str, str, str] | None:
        """The earliest live timer due at or before ``watermark_ms``, removed; else None."""
        due = self.next_due()
        if due is None or due > watermark_ms:
            return None
        _, _, det, key, tag = heapq.heappop(self._heap)
        del self._live[(det, key, tag)]
        return due, det, key, tag

    def __len__(self) -> int:
        return len(self._live)

    def snapshot(self) -> list[tuple[int, str, str, str]]:
        return sorted((due, det, key, tag) for (det, key, tag), due in self._live.items())

    def restore(self, timers: list[tuple[int, str, str, str]]) -> None:
        for due, det, key, tag in timers:
            self.schedule(det, key, tag, due)
