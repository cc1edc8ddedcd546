#!/usr/bin/env python3
"""Engine cost and state size of the login and 2FA detectors.

usage: python -m bench.auth_cost EVENTS.jsonl [--limit N] [--runs 3] [--cold-after-ms MS]
                                  [--cold-above-accounts N]

EVENTS.jsonl is a realistic mix of all three topics, e.g. ``secmon simulate --seed 7 --out
DIR`` then ``DIR/events.jsonl``.  The events are decoded once and sorted by time; then an
account task (plus the source task it forwards to, as in ``secmon replay``) processes them

- with no detectors (the engine's own cost), and
- with the auth detectors (``brute_force``, ``credential_attacks``, ``impossible_travel``,
  ``mfa_bruteforce``, ``mfa_posture``, ``mfa_weak_secret``, ``mfa_secret_reuse``,
  ``weak_password``) at their defaults,

in micro-batches of 4,096 events.  The difference in process CPU time (best of ``--runs``
interleaved runs),
divided by the number of events, is what the auth detectors add per event; it is also given
per auth event.  ``tracemalloc`` then measures the state each detector holds, per key.
The cold tier is set as in the service (``engine.cold_after_ms``; ``--cold-after-ms 0`` turns
it off): packing and unpacking the detectors' state of idle accounts is part of their cost
where it happens.  By default a task freezes nothing while it holds state for at most
``engine.cold_above_accounts`` (10,000) accounts, which the simulator's 5,000 are;
``--cold-above-accounts 0`` makes it freeze as a task with many accounts does.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import python_loop_us
from secmon.contract import AUTH_TYPES, BadRecord, EventDecoder
from secmon.detectors.registry import DetectorSpec, resolve
from secmon.engine.pipeline import COLD_ABOVE_ACCOUNTS, COLD_AFTER_MS, Pipeline

AUTH_DETECTORS = (
    "brute_force", "credential_attacks", "impossible_travel", "mfa_bruteforce", "mfa_posture",
    "mfa_weak_secret", "mfa_secret_reuse", "weak_password",
)  # fmt: skip


def load(path: Path, limit: int | None) -> list[Any]:
    decoder = EventDecoder()
    events = []
    with path.open("rb") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            try:
                events.append(decoder.decode(line))
            except BadRecord:
                continue
    events.sort(key=lambda e: e.ts)
    return events


def run(
    events: list[Any],
    specs: list[DetectorSpec],
    cold_after_ms: int = COLD_AFTER_MS,
    cold_above_accounts: int = COLD_ABOVE_ACCOUNTS,
) -> tuple[float, Pipeline, Any, Any]:
    pipeline = Pipeline(specs, cold_after_ms=cold_after_ms, cold_above_accounts=cold_above_accounts)
    found: list[Any] = []
    source = pipeline.source_task("bench-source", found.append) if pipeline.has_source_detectors else None
    account = pipeline.account_task("bench-account", found.append, source.dispatch_record if source else None)
    process = account.process
    gc.collect()
    started = time.process_time()
    for i, event in enumerate(events):
        process(event, "bench", i)
        if i % 4096 == 4095:
            account.end_batch()
            account.forget_changes()  # as secmon replay does: no checkpoints
            if source is not None:
                source.advance_to(account.stream_ms)
                source.end_batch()
                source.forget_changes()
    account.flush()
    if source is not None:
        source.advance_to(account.stream_ms)
        source.flush()
    return time.process_time() - started, pipeline, account, source


def state_sizes(events: list[Any], specs: list[DetectorSpec]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for spec in specs:
        gc.collect()
        tracemalloc.start()
        _, _, account, source = run(events, [spec], cold_after_ms=0)  # every key in the dict
        task = source if spec.scope == "source" else account
        det = task.by_name[spec.name]
        keys = len(det.state)
        del account, source, task
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        held = sum(s.size for s in snapshot.statistics("filename"))
        out[spec.name] = {"keys": keys, "bytes_per_key": round(held / keys) if keys else 0}
        del det
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("events", type=Path)
    p.add_argument("--limit", type=int)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--cold-after-ms", type=int, default=COLD_AFTER_MS)
    p.add_argument("--cold-above-accounts", type=int, default=COLD_ABOVE_ACCOUNTS)
    args = p.parse_args()
    events = load(args.events, args.limit)
    n = len(events)
    n_auth = sum(1 for e in events if e.event_type in AUTH_TYPES)
    all_off = {spec.name: {"enabled": False} for spec in resolve(None)}
    auth = resolve({**all_off, **{name: {} for name in AUTH_DETECTORS}})
    loop_start = python_loop_us()
    base = with_auth = float("inf")
    for _ in range(args.runs):  # interleaved, best of each: the machine is shared
        base = min(base, run(events, [], args.cold_after_ms, args.cold_above_accounts)[0])
        with_auth = min(with_auth, run(events, auth, args.cold_after_ms, args.cold_above_accounts)[0])
    added_us = (with_auth - base) / n * 1e6
    result: dict[str, Any] = {
        "machine": {"python_loop_us": {"start": loop_start, "end": python_loop_us()}},
        "events": n,
        "auth_events": n_auth,
        "cold_after_ms": args.cold_after_ms,
        "cold_above_accounts": args.cold_above_accounts,
        "engine_only_us_per_event": round(base / n * 1e6, 2),
        "with_auth_detectors_us_per_event": round(with_auth / n * 1e6, 2),
        "auth_detectors_add_us_per_event": round(added_us, 2),
        "auth_detectors_add_us_per_auth_event": round((with_auth - base) / n_auth * 1e6, 2),
    }
    if not args.no_memory:
        result["state"] = state_sizes(events, auth)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
