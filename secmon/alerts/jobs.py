"""Periodic jobs of the action layer, run by one thread beside the worker.

* ``sla_sweep`` — record SLA breaches (escalating), close old resolved cases;
* ``digests`` — send the held user messages as one digest per account;
* ``alertmanager_resend`` — keep active alerts alive on Alertmanager, expire quiet ones.

Each job is safe to run on several workers at once (they claim their rows with
conditional UPDATEs), so every worker runs them.  A job that wrote outbox rows wakes the
dispatcher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from secmon.clock import wall_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A named periodic task: ``run(now_ms)`` returns how much it did (0: nothing)."""

    name: str
    run: Callable[[int], int]


class JobRunner:
    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        interval_ms: int,
        on_work: Callable[[], None] = lambda: None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.jobs = list(jobs)
        self.interval_ms = interval_ms
        self.on_work = on_work
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now_ms: int | None = None) -> dict[str, int]:
        """Run every job once (a failing job is logged; the others still run)."""
        now = self.clock() if now_ms is None else now_ms
        done: dict[str, int] = {}
        for job in self.jobs:
            try:
                done[job.name] = job.run(now)
            except Exception:
                log.exception("job %s failed; it runs again in %d ms", job.name, self.interval_ms)
                done[job.name] = 0
        if any(done.values()):
            self.on_work()
        return done

    def start(self) -> JobRunner:
        if self.jobs:
            self._thread = threading.Thread(target=self._loop, name="secmon-jobs", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_ms / 1000):
            self.run_once()
