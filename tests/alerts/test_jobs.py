"""Periodic jobs: each runs every interval, a failing one does not stop the others."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from secmon.alerts.jobs import Job, JobRunner
from tests.alerts.conftest import NOW, committer, config, finding, layer_for, wait_until
from tests.helpers.events import HOUR


def test_run_once_isolates_failures_and_wakes_on_work() -> None:
    woken = []

    def boom(now: int) -> int:
        raise RuntimeError("broken job")

    runner = JobRunner([Job("boom", boom), Job("works", lambda now: now - NOW)], interval_ms=1000,
                       on_work=lambda: woken.append(1))  # fmt: skip
    assert runner.run_once(NOW + 5) == {"boom": 0, "works": 5}
    assert woken == [1]
    assert runner.run_once(NOW) == {"boom": 0, "works": 0} and woken == [1]


def test_thread_runs_jobs_until_stopped() -> None:
    ran = threading.Event()

    def tick(now: int) -> int:
        ran.set()
        return 0

    runner = JobRunner([Job("tick", tick)], interval_ms=20).start()
    try:
        assert ran.wait(2)
    finally:
        runner.stop()
    assert runner._thread is not None and not runner._thread.is_alive()


def test_the_action_layer_jobs(engine: Engine) -> None:
    """The wired jobs sweep SLAs, flush digests and re-send Alertmanager alerts."""
    cfg = config(feed={"alertmanager": {"url": "http://127.0.0.1:9"}})
    layer = layer_for(engine, cfg)
    jobs = layer.jobs(engine)
    assert [j.name for j in jobs] == ["sla_sweep", "digests", "alertmanager_resend"]
    committer(engine, layer).commit([finding("account_takeover", severity="critical")], [], None, NOW)
    done = JobRunner(jobs, interval_ms=1000).run_once(NOW + 2 * HOUR)
    assert done == {"sla_sweep": 1, "digests": 0, "alertmanager_resend": 1}
    assert wait_until(lambda: layer.case_service.list_cases(breached=True) != [])
    quiet = layer_for(engine, config(cases={"enabled": False}, notifications={"enabled": False}))
    assert quiet.jobs(engine) == []
