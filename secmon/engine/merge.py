"""Event-time merge of a task's inputs (Kafka Streams' timestamp synchronisation).

An account task reads one partition of three topics.  Kafka delivers them in arbitrary
interleavings, but the takeover sequence and every cross-topic window need the account's
events in ``occurred_at`` order — the order a replay of the same events sees.  The merger
buffers each input and releases the event with the smallest timestamp while every input
has data; an empty input stops the release unless it is *caught up* (nothing more to fetch)
or has kept the others waiting for ``max_idle_ms`` (then order is best effort and late
events are merely processed late).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any


class TimeMerger:
    """Buffers events per input and releases them in event-time order."""

    def __init__(self, inputs: list[str], max_idle_ms: int = 200) -> None:
        self.inputs = list(inputs)
        self.max_idle_ms = max_idle_ms
        self.buffers: dict[str, deque[tuple[int, int, Any]]] = {i: deque() for i in self.inputs}
        self._waiting_since: int | None = None

    def push(self, source: str, ts: int, offset: int, item: Any) -> None:
        self.buffers[source].append((ts, offset, item))

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def head_offset(self, source: str) -> int | None:
        """Offset of the oldest buffered (unreleased) record of an input."""
        buf = self.buffers[source]
        return buf[0][1] if buf else None

    def clear(self) -> None:
        for buf in self.buffers.values():
            buf.clear()
        self._waiting_since = None

    def pop_ready(self, now_ms: int, caught_up: Callable[[str], bool]) -> Iterator[tuple[str, int, Any]]:
        """Yield ``(input, offset, item)`` in timestamp order while that order is certain."""
        buffers = self.buffers
        while True:
            best: str | None = None
            best_ts = 0
            blocked = False
            for name, buf in buffers.items():
                if buf:
                    ts = buf[0][0]
                    if best is None or ts < best_ts:
                        best, best_ts = name, ts
                elif not caught_up(name):
                    blocked = True
            if best is None:
                self._waiting_since = None
                return
            if blocked:
                if self._waiting_since is None:
                    self._waiting_since = now_ms
                if now_ms - self._waiting_since < self.max_idle_ms:
                    return
            else:
                self._waiting_since = None
            _, offset, item = buffers[best].popleft()
            yield best, offset, item
