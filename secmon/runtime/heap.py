"""Keep the garbage collector's full passes off the worker's latency.

CPython's oldest-generation collection walks every tracked container in the process: a
worker holds ~100k of them that live as long as the process (kafka-python's protocol
schemas, SQLAlchemy, the metrics registry, the restored task state).  At 10k ev/s on the
bench VM each full pass stopped the worker for 100-220 ms, the largest stall of a live
batch.  After an assignment, before its first batch (a rebalance pauses processing anyway),
the long-lived objects are moved to the permanent generation (:func:`gc.freeze`), so full
passes walk only what was made since: 26-49 ms.  The worker does it from its loop, not in
the rebalance listener: kafka-python may run the listener on its I/O loop, which warns of
any task that holds it over 100 ms (a settle takes ~200 ms in `secmon demo`'s process).

Frozen objects are never collected, so each settle first unfreezes and collects: a cycle
that died since the last assignment is freed then, and nothing is held for longer than
one assignment.
"""

from __future__ import annotations

import gc
import time


def settle_long_lived() -> tuple[int, float]:
    """Collect, then freeze what survives.  Returns (objects frozen, seconds taken)."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count(), time.perf_counter() - started
