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
from collections.abc import Callable
from enum import Enum
from operator import itemgetter
from typing import Any


class InputState(Enum):
    CAUGHT_UP = "caught_up"
    LAGGING = "lagging"
    UNKNOWN = "unknown"


_NO_BOUND = 2**63
_by_time = itemgetter(0)


class TimeMerger:
    """Buffers events per input and releases them in event-time order."""

    def __init__(self, inputs: list[str], max_idle_ms: int = 200, *, skew_ms: int = 5_000,
                 quiet_ms: int = 500) -> None:
        self.inputs = list(inputs)
        self.max_idle_ms = max_idle_ms
        self.skew_ms = skew_ms
        self.quiet_ms = quiet_ms
        #: per input, its entries ``(ts, label, offset, item)``, released as they are (no tuple
        #: built per event on the way out); the label is the input's name unless the caller
        #: pushed another (the worker: its task's origin, ``topic/partition``)
        self.buffers: dict[str, deque[tuple[int, str, int, Any]]] = {i: deque() for i in self.inputs}
        self._waiting_since: int | None = None
        self._last_ts: dict[str, int] = {}
        self._quiet_since: dict[str, int] = {}

    def push(self, source: str, ts: int, offset: int, item: Any) -> None:
        self.push_many(source, [(ts, source, offset, item)])

    def push_many(self, source: str, entries: list[tuple[int, str, int, Any]]) -> None:
        """What :meth:`push` does for each entry ``(ts, label, offset, item)`` of a fetched
        batch of input ``source``."""
        if entries:
            self.buffers[source].extend(entries)
            self._last_ts[source] = entries[-1][0]
            self._quiet_since.pop(source, None)

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def head_offset(self, source: str) -> int | None:
        """Offset of the oldest buffered (unreleased) record of an input."""
        buf = self.buffers[source]
        return buf[0][2] if buf else None

    def clear(self) -> None:
        for buf in self.buffers.values():
            buf.clear()
        self._waiting_since = None

    def pop_ready(self, now_ms: int, state: Callable[[str], InputState]) -> list[tuple[int, str, int, Any]]:
        """Remove and return ``(ts, label, offset, item)`` for every buffered event whose place
        in timestamp order is certain, in that order (ties: input order, then offset).

        Works in bounds rather than event by event: everything up to the earliest *last*
        buffered timestamp of the inputs that hold data can go, unless an empty input holds
        the bound lower (see the module docstring); repeat until nothing more can go.
        """
        out: list[tuple[int, str, int, Any]] = []
        buffers = self.buffers
        while True:
            bound = _NO_BOUND
            blocked = lagging = False
            has_data = False
            for name, buf in buffers.items():
                if buf:
                    has_data = True
                    tail = buf[-1][0]
                    if tail < bound:
                        bound = tail
                    continue
                st = state(name)
                if st is InputState.LAGGING:
                    lagging = True
                    break
                if st is InputState.UNKNOWN:
                    blocked = True
                    continue
                last = self._last_ts.get(name)  # caught up: held briefly if far behind
                if last is not None:
                    since = self._quiet_since.setdefault(name, now_ms)
                    if now_ms - since < self.quiet_ms and last + self.skew_ms < bound:
                        bound = last + self.skew_ms
            if lagging or not has_data:
                self._waiting_since = None
                return out
            if blocked:
                if self._waiting_since is None:
                    self._waiting_since = now_ms
                if now_ms - self._waiting_since < self.max_idle_ms:
                    return out
            else:
                self._waiting_since = None
            released: list[tuple[int, str, int, Any]] = []
            for buf in buffers.values():
                while buf and buf[0][0] <= bound:
                    released.append(buf.popleft())
            if not released:
                return out
            released.sort(key=_by_time)  # stable: equal times keep input, then offset, order
            out += released
