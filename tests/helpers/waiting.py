"""Polling for something a real peer (broker, server, worker process) does in its own time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10, interval_s: float = 0.05) -> bool:
    """True as soon as ``predicate()`` is; after ``timeout_s``, its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
