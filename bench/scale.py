"""Scale-out on one machine: N ``secmon run`` processes in one consumer group, all detectors on,
over pre-produced topics.

* :func:`workers_end_to_end`: N separate processes with the PostgreSQL store, as on several
  hosts (``python -m bench.run --only scale``); needs a PostgreSQL server (``--pg``, default
  ``$SECMON_BENCH_PG`` or postgres on 127.0.0.1:5432).  Each run gets a fresh database,
  dropped afterwards.
* :func:`supervised_end_to_end`: one ``secmon run --workers N`` with the SQLite store, a worker
  per core of one host (part of the end-to-end rounds of ``python -m bench.run``).

Timed from the moment every worker is ready (``/readyz``) to the last event, summed over
the workers' ``/metrics``.
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

from secmon.net import free_port, free_ports
from tests.helpers.pg import PG_ADMIN_URL, pg_database

DEFAULT_PG = os.environ.get("SECMON_BENCH_PG", PG_ADMIN_URL)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


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
    """``workers`` ``secmon run`` processes in one group over the topics, PostgreSQL store (as
    on several hosts); events/s (see :func:`_timed`)."""
    app = f"scale{workers}-{uuid.uuid4().hex[:6]}"
    with pg_database("secmon_bench", pg_admin_url) as db_url:
        cmds = [(["run", "--config", str(_config(tmp, app, i, bootstrap, topics, db_url, port))], [port])
                for i, port in enumerate(free_port() for _ in range(workers))]  # fmt: skip
        result = _timed(cmds, n, tmp, app)
    return {"workers": workers, **result, "store": "postgresql"}


def supervised_end_to_end(bootstrap: str, topics: dict[str, str], n: int, tmp: Path, workers: int) -> dict[str, Any]:
    """One ``secmon run --workers N`` (one host, SQLite store: the embedded default with a
    worker per core); events/s (see :func:`_timed`)."""
    app = f"sup{workers}-{uuid.uuid4().hex[:6]}"
    port = free_ports(workers)
    config = _config(tmp, app, 0, bootstrap, topics, f"sqlite:///{tmp / (app + '.db')}", port)
    result = _timed([(["run", "--config", str(config), "--workers", str(workers)], [port + i for i in range(workers)])],
                    n, tmp, app)  # fmt: skip
    return {"workers": workers, **result, "store": "sqlite"}


def _config(tmp: Path, app: str, i: int, bootstrap: str, topics: dict[str, str], db_url: str, port: int) -> Path:
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
    return path


def _timed(cmds: list[tuple[list[str], list[int]]], n: int, tmp: Path, app: str) -> dict[str, Any]:
    """Start each ``secmon`` command (with the metrics ports it serves); the rate of the events
    consumed (summed over every port) from the moment every worker is ready to the ``n``-th
    event; then SIGTERM them."""
    procs: list[subprocess.Popen[bytes]] = []
    ports = [port for _, cmd_ports in cmds for port in cmd_ports]
    try:
        for i, (args, _) in enumerate(cmds):
            log = (tmp / f"{app}-{i}.log").open("ab")
            procs.append(subprocess.Popen([sys.executable, "-m", "secmon.cli", *args], stdout=log,
                                          stderr=subprocess.STDOUT, env={**os.environ, "SECMON_WORKER_ID": f"{app}-{i}"}))  # fmt: skip
        # Timed from the moment every worker is ready — holds partitions, state restored: the
        # group's first rebalances, as members join one after another, are start-up, not
        # throughput — counting only the events consumed from then on.
        started = None
        at_start = 0.0
        deadline = time.monotonic() + 1800
        while True:
            done = sum(_consumed(port) for port in ports)
            if started is None and all(_ready(p) for p in ports):
                started, at_start = time.perf_counter(), done
            if done >= n:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited early; see {tmp}/{app}-*.log")
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not consume every event in 30 min")
            # A scrape renders every metric on the worker's thread of control (the GIL): at
            # 20 scrapes a second it took a tenth of a worker.  Look rarely while far from
            # the end, often near it.
            rate = (done - at_start) / (time.perf_counter() - started) if started and done > at_start else 0.0
            time.sleep(min(0.5, max(0.02, (n - done) / rate / 4)) if rate else 0.1)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        measured = n - at_start
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"events_per_s": measured / elapsed, "seconds": elapsed, "events_timed": measured}
