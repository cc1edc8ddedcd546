"""Scale-out on one machine: N ``secmon run`` processes in one consumer group, all detectors on,
over pre-produced topics, with the PostgreSQL store (the store for several workers).

Part of ``python -m bench.run`` (``--only scale``); needs a PostgreSQL server (``--pg``,
default ``$SECMON_BENCH_PG`` or postgres on 127.0.0.1:5432).  Each run gets a fresh database,
dropped afterwards.  Timed from the first consumed event to the last, summed over workers'
``/metrics``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml

from secmon.runtime.broker import free_port
from tests.helpers.pg import PG_ADMIN_URL, pg_database

DEFAULT_PG = os.environ.get("SECMON_BENCH_PG", PG_ADMIN_URL)


def _consumed(port: int) -> float:
    """events consumed + dead letters, from one worker's /metrics (0 while it starts)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in ("secmon_events_consumed_total", "secmon_dead_letters_total"):
            total += float(line.rpartition(" ")[2])
    return total


def workers_end_to_end(bootstrap: str, topics: dict[str, str], n: int, tmp: Path, workers: int,
                       pg_admin_url: str = DEFAULT_PG) -> dict[str, Any]:
    """``workers`` processes in one group over the topics; events/s from first to last event."""
    app = f"scale{workers}-{uuid.uuid4().hex[:6]}"
    with pg_database("secmon_bench", pg_admin_url) as db_url:
        procs: list[tuple[subprocess.Popen[bytes], int]] = []
        try:
            for i in range(workers):
                port = free_port()
                cfg = {
                    "app_id": app,
                    "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{app}-g", "topics": topics,
                              "session_timeout_ms": 6000, "heartbeat_interval_ms": 2000, "create_topics": False},
                    "store": {"url": db_url},
                    "server": {"port": port},
                    "logging": {"level": "WARNING", "format": "text"},
                }  # fmt: skip
                path = tmp / f"{app}-{i}.yaml"
                path.write_text(yaml.safe_dump(cfg))
                log = (tmp / f"{app}-{i}.log").open("ab")
                proc = subprocess.Popen([sys.executable, "-m", "secmon.cli", "run", "--config", str(path)],
                                        stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "SECMON_WORKER_ID": f"{app}-{i}"})  # fmt: skip
                procs.append((proc, port))
            started = None
            deadline = time.monotonic() + 1800
            while True:
                done = sum(_consumed(port) for _, port in procs)
                if done and started is None:
                    started = time.perf_counter()
                if done >= n:
                    break
                if any(p.poll() is not None for p, _ in procs):
                    raise RuntimeError(f"a worker exited early; see {tmp}/{app}-*.log")
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not consume every event in 30 min")
                time.sleep(0.05)
            elapsed = time.perf_counter() - (started or time.perf_counter())
        finally:
            for proc, _ in procs:
                proc.send_signal(signal.SIGTERM)
            for proc, _ in procs:
                try:
                    proc.wait(90)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return {"workers": workers, "events_per_s": n / elapsed, "seconds": elapsed, "store": "postgresql"}
