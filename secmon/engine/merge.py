"""Event-time merge of a task's inputs (Kafka Streams' timestamp synchronisation).

An account task reads one partition of three topics.  Kafka delivers them in arbitrary
interleavings, but the takeover sequence and every cross-topic window need the account's
events in ``occurred_at`` order — the order a replay of the same events sees.  The merger
buffers each input and releases the event with the smallest timestamp while every input
has data.  An empty input holds the release back:

- ``CAUGHT_UP`` (nothing more to fetch): it does not hold anything back — except that when
  its last event is far behind the others in event time (``skew_ms``: history being
  backfilled fast, where another topic's producer may still be flushing older events) it
  holds them for ``quiet_ms`` after it went quiet; live traffic, where the topics' event
  times are close, never waits;
- ``LAGGING`` (known to have unfetched records): wait for them, however long — releasing
  ahead would let stream time race past them and fire timers too early;
- ``UNKNOWN`` (no fetch response yet): wait at most ``max_idle_ms``, then order is best
  effort and a late event is merely processed late (Kafka Streams' ``max.task.idle.ms``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any


class InputState(Enum):
    CAUGHT_UP = "caught_up"
    LAGGING = "lagging"
    UNKNOWN = "unknown"


class TimeMerger:
    """Buffers events per input and releases them in event-time order."""

    def __init__(self, inputs: list[str], max_idle_ms: int = 200, *, skew_ms: int = 5_000,
                 quiet_ms: int = 500) -> None:
        self.inputs = list(inputs)
        self.max_idle_ms = max_idle_ms
        self.skew_ms = skew_ms
        self.quiet_ms = quiet_ms
        self.buffers: dict[str, deque[tuple[int, int, Any]]] = {i: deque() for i in self.inputs}
        self._waiting_since: int | None = None
        self._last_ts: dict[str, int] = {}
        self._quiet_since: dict[str, int] = {}

    def push(self, source: str, ts: int, offset: int, item: Any) -> None:
        self.buffers[source].append((ts, offset, item))
        self._last_ts[source] = ts
        self._quiet_since.pop(source, None)

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

    def pop_ready(self, now_ms: int, state: Callable[[str], InputState]) -> Iterator[tuple[str, int, Any]]:
        """Yield ``(input, offset, item)`` in timestamp order while that order is certain."""
        buffers = self.buffers
        lagging, unknown = InputState.LAGGING, InputState.UNKNOWN
        while True:
            best: str | None = None
            best_ts = 0
            blocked = has_empty = False
            for name, buf in buffers.items():
                if buf:
                    ts = buf[0][0]
                    if best is None or ts < best_ts:
                        best, best_ts = name, ts
                else:
                    has_empty = True
                    st = state(name)
                    if st is lagging:
                        self._waiting_since = None
                        return
                    if st is unknown:
                        blocked = True
            if best is None:
                self._waiting_since = None
                return
            if has_empty and not blocked and self._held_by_quiet_input(best_ts, now_ms):
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

    def _held_by_quiet_input(self, best_ts: int, now_ms: int) -> bool:
        """An input that just went quiet far behind in event time holds the release briefly."""
        for name, buf in self.buffers.items():
            if buf:
                continue
            last = self._last_ts.get(name)
            if last is None or best_ts - last <= self.skew_ms:
                continue
            since = self._quiet_since.setdefault(name, now_ms)
            if now_ms - since < self.quiet_ms:
                return True
        return False
