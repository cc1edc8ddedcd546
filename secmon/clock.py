"""The wall clock, in epoch milliseconds.

The default ``clock`` of every component that takes one: tests pass their own, so time can
be moved without sleeping.
"""

from __future__ import annotations

import time


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
