"""The supervisor of ``secmon run --workers N``, with real child processes (small Python
programs standing in for workers; ``tests/integration/test_worker.py`` runs real workers)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from secmon.runtime.supervisor import Supervisor
from tests.helpers.waiting import wait_until

#: A well-behaved worker: notes its index and id, then waits for SIGTERM and exits 0.
GOOD = """
import os, signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
index = os.environ["SECMON_WORKER_INDEX"]
tmp = out / ("." + index)  # written whole, then renamed: the test never reads half a file
tmp.write_text(os.environ["SECMON_WORKER_ID"] + " " + str(os.getpid()))
tmp.rename(out / index)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.05)
"""


def _start(sup: Supervisor) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(sup.run()), daemon=True)
    thread.start()
    return thread, result


def test_workers_get_their_index_and_a_stable_id_and_stop_cleanly(tmp_path: Path) -> None:
    sup = Supervisor([sys.executable, "-c", GOOD, str(tmp_path)], 2, "app@host:1", restart_delay_s=0.05)
    thread, result = _start(sup)
    assert wait_until(lambda: (tmp_path / "0").exists() and (tmp_path / "1").exists(), timeout_s=20)
    ids = {p.name: p.read_text().split()[0] for p in tmp_path.glob("[0-9]")}
    assert ids == {"0": "app@host:1-0", "1": "app@host:1-1"}
    pids = sup.pids
    assert len(pids) == 2
    sup.stop()
    thread.join(30)
    assert result == [0]
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_worker_that_dies_is_restarted_under_the_same_id(tmp_path: Path) -> None:
    import os
    import signal

    sup = Supervisor([sys.executable, "-c", GOOD, str(tmp_path)], 2, "w", restart_delay_s=0.05)
    thread, result = _start(sup)
    try:
        assert wait_until(lambda: (tmp_path / "1").exists(), timeout_s=20)
        old_pid = int((tmp_path / "1").read_text().split()[1])
        os.kill(old_pid, signal.SIGKILL)
        assert wait_until(lambda: int((tmp_path / "1").read_text().split()[1]) != old_pid, timeout_s=20)
        assert (tmp_path / "1").read_text().split()[0] == "w-1"
        assert len(sup.pids) == 2
    finally:
        sup.stop()
        thread.join(30)
    assert result == [0]


def test_workers_that_keep_dying_stop_the_supervisor_with_an_error(tmp_path: Path) -> None:
    sup = Supervisor([sys.executable, "-c", "import sys; sys.exit(3)"], 2, "w", max_restarts=3, restart_delay_s=0.01)
    started = time.monotonic()
    assert sup.run() == 1
    assert time.monotonic() - started < 30
    assert sup.pids == []


def test_a_worker_that_ignores_sigterm_is_killed_and_reported(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.05)"
    sup = Supervisor([sys.executable, "-c", stubborn], 1, "w", stop_timeout_s=0.5)
    thread, result = _start(sup)
    assert wait_until(lambda: len(sup.pids) == 1, timeout_s=20)
    time.sleep(0.3)  # let it install its handler
    sup.stop()
    thread.join(30)
    assert result == [1]


def test_at_least_one_worker() -> None:
    with pytest.raises(ValueError):
        Supervisor(["true"], 0, "w")


@pytest.mark.parametrize(
    ("setting", "cores", "workers", "expected"),
    [
        ("auto", 2, None, True),  # one worker, a second core for its fetch process
        ("auto", 2, "2", False),  # a worker per core: no core to spare
        ("auto", 4, "2", True),
        ("auto", 1, None, False),
        (True, 1, "2", True),  # an explicit setting wins
        (False, 8, None, False),
    ],
)
def test_fetch_process_auto_wants_two_cores_per_worker(
    monkeypatch: pytest.MonkeyPatch, setting: bool | str, cores: int, workers: str | None, expected: bool
) -> None:
    from secmon.runtime.supervisor import WORKERS_ENV
    from secmon.sources.kafka import use_fetch_process

    monkeypatch.setattr("os.cpu_count", lambda: cores)
    if workers is None:
        monkeypatch.delenv(WORKERS_ENV, raising=False)
    else:
        monkeypatch.setenv(WORKERS_ENV, workers)
    assert use_fetch_process(setting) is expected


def test_workers_are_told_how_many_run_on_the_host(tmp_path: Path) -> None:
    note = (
        "import os, sys; from pathlib import Path\n"
        "Path(sys.argv[1], os.environ['SECMON_WORKER_INDEX']).write_text(os.environ['SECMON_WORKERS_ON_HOST'])"
    )
    sup = Supervisor([sys.executable, "-c", note, str(tmp_path)], 3, "w", restart_delay_s=60)
    thread, _ = _start(sup)

    def noted() -> list[str]:
        return [p.read_text() for p in tmp_path.glob("[0-9]")]

    try:
        assert wait_until(lambda: len(noted()) == 3 and all(noted()), timeout_s=20)
        assert set(noted()) == {"3"}
    finally:
        sup.stop()
        thread.join(30)
