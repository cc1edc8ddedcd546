"""A small in-process sliding-window limiter for the public and log-in endpoints.

Per client address, in memory: it slows a scanner hitting ``/not-me`` or the log-in form
from one address.  It is per process (the API runs as one process per host); the limit
that matters for security — caller verification per account — is kept in the database
(:mod:`secmon.api.verify`) so it holds across processes and restarts.
"""

from __future__ import annotations

import threading
from collections import deque


class SlidingWindow:
    def __init__(self, limit: int, window_ms: int, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.max_keys = max_keys
        self._hits: dict[str, deque[int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now_ms: int) -> bool:
        """Record a hit for ``key``; False when it is over the limit (the hit is not counted)."""
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._evict(now_ms)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now_ms - self.window_ms:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now_ms)
            return True

    def _evict(self, now_ms: int) -> None:
        stale = [k for k, h in self._hits.items() if not h or h[-1] <= now_ms - self.window_ms]
        for k in stale:
            del self._hits[k]
        if len(self._hits) >= self.max_keys:  # still full: drop the oldest half (bounded memory)
            for k in list(self._hits)[: self.max_keys // 2]:
                del self._hits[k]
