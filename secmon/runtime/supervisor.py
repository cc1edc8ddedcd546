"""``secmon run --workers N``: N worker processes of one configuration, on one host.

A worker runs its detectors on one thread (Python's GIL), so one worker uses about one core
however many the machine has.  Workers of one ``app_id`` form one consumer group and divide
the partitions among themselves (the same as starting ``secmon run`` N times, which is how
hosts scale out); this module does that on one host and looks after the processes:

* worker ``i`` (from 0) is ``secmon run`` with the same arguments, ``SECMON_WORKER_ID``
  ``<id>-<i>`` (stable across restarts, so a restarted worker at once takes back the outbox
  rows it left in flight) and its metrics and health endpoint on ``server.port + i``;
* SIGTERM and SIGINT are passed on; each worker checkpoints, flushes and closes as alone;
* a worker that exits unexpectedly is restarted (its partitions go to the others meanwhile),
  unless workers keep dying — ``max_restarts`` exits within ``restart_window_s`` — when the
  rest are stopped and the supervisor exits 1 for the service manager to act on;
* the workers die with the supervisor, however it dies (``PR_SET_PDEATHSIG`` on Linux).

The store must take several writers: PostgreSQL, or SQLite on this host's disk (WAL,
immediate transactions).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from secmon.runtime.broker import die_with_parent

log = logging.getLogger(__name__)

#: Set in each worker's environment: its index, which the worker adds to ``server.port``.
INDEX_ENV = "SECMON_WORKER_INDEX"
ID_ENV = "SECMON_WORKER_ID"
#: How many workers this supervisor runs on the host.
WORKERS_ENV = "SECMON_WORKERS_ON_HOST"


@dataclass
class _Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    exits: deque[float] = field(default_factory=deque)


class Supervisor:
    """Starts ``workers`` copies of ``argv`` (a ``secmon run`` without ``--workers``) and
    keeps them running until :meth:`stop`."""

    def __init__(
        self,
        argv: Sequence[str],
        workers: int,
        base_id: str,
        *,
        max_restarts: int = 5,
        restart_window_s: float = 60.0,
        restart_delay_s: float = 1.0,
        stop_timeout_s: float = 120.0,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.argv = list(argv)
        self.base_id = base_id
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.restart_delay_s = restart_delay_s
        self.stop_timeout_s = stop_timeout_s
        self._slots = [_Slot(i) for i in range(workers)]
        self._stopping = threading.Event()

    def run(self) -> int:
        """Supervise until stopped (0 when every worker then exits cleanly) or until workers
        keep dying (1)."""
        for slot in self._slots:
            self._start(slot)
        failed = False
        while not self._stopping.is_set():
            for slot in self._slots:
                proc = slot.proc
                if proc is None or proc.poll() is None:
                    continue
                if self._stopping.is_set():
                    break
                now = time.monotonic()
                slot.exits.append(now)
                while slot.exits and slot.exits[0] < now - self.restart_window_s:
                    slot.exits.popleft()
                if len(slot.exits) >= self.max_restarts:
                    log.error("worker %d exited %d times within %.0f s: stopping all workers",
                              slot.index, len(slot.exits), self.restart_window_s)  # fmt: skip
                    failed = True
                    self._stopping.set()
                    break
                log.warning("worker %d (pid %d) exited with %s: restarting it", slot.index, proc.pid, proc.returncode)
                slot.proc = None
                self._stopping.wait(self.restart_delay_s)
                if not self._stopping.is_set():
                    self._start(slot)
            self._stopping.wait(0.2)
        return 1 if self._stop_all() or failed else 0

    def stop(self) -> None:
        self._stopping.set()

    @property
    def pids(self) -> list[int]:
        return [s.proc.pid for s in self._slots if s.proc is not None and s.proc.poll() is None]

    def _start(self, slot: _Slot) -> None:
        env = {
            **os.environ,
            INDEX_ENV: str(slot.index),
            ID_ENV: f"{self.base_id}-{slot.index}",
            WORKERS_ENV: str(len(self._slots)),  # kafka.fetch_process: auto reads it
        }
        slot.proc = subprocess.Popen(self.argv, env=env, preexec_fn=die_with_parent)
        log.info("worker %d started (pid %d)", slot.index, slot.proc.pid)

    def _stop_all(self) -> bool:
        """SIGTERM every worker and wait; True if any had to be killed or failed."""
        running = [s.proc for s in self._slots if s.proc is not None]
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        bad = False
        for proc in running:
            try:
                code = proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in %.0f s: killing it", proc.pid, self.stop_timeout_s)
                proc.kill()
                proc.wait()
                bad = True
                continue
            if code not in (0, -signal.SIGTERM):
                bad = True
        return bad


def worker_index() -> int:
    """This worker's index under a supervisor (0 when run alone)."""
    return int(os.environ.get(INDEX_ENV, "0"))


def workers_on_host() -> int:
    """How many workers the supervisor of this one runs on the host (1 when run alone)."""
    return int(os.environ.get(WORKERS_ENV, "1"))
