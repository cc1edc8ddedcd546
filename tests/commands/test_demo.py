"""``secmon demo`` — the README's "run the main job" command — on a real embedded broker:
it starts, finds things in its traffic, and Ctrl-C (SIGINT to the whole foreground
process group, as a terminal sends it) stops it cleanly, broker included."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from secmon.net import free_port

pytestmark = [pytest.mark.integration]


def _metric_total(url: str, name: str) -> float:
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name + "{"))


def test_demo_runs_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    log = (tmp_path / "demo.log").open("wb")
    broker_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "secmon.cli", "demo", "--dir", str(tmp_path / "state"), "--port", str(broker_port),
         "--accounts", "300", "--rate", "400", "--speed", "600"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # its own group, like a terminal job
    )
    try:
        metrics_url = None
        deadline = time.monotonic() + 90
        while metrics_url is None and time.monotonic() < deadline:
            found = re.search(r"metrics:\s+(http://\S+/metrics)", (tmp_path / "demo.log").read_text(errors="replace"))
            metrics_url = found.group(1) if found else None
            assert proc.poll() is None, (tmp_path / "demo.log").read_text(errors="replace")[-2000:]
            time.sleep(0.5)
        assert metrics_url, "the demo never printed its URLs"
        consumed = findings = 0.0
        while time.monotonic() < deadline and not (consumed > 500 and findings > 0):
            time.sleep(1)
            consumed = _metric_total(metrics_url, "secmon_events_consumed_total")
            findings = _metric_total(metrics_url, "secmon_findings_total")
        assert consumed > 500 and findings > 0, (consumed, findings)

        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the service and the broker both get it
        assert proc.wait(timeout=60) == 0
        text = (tmp_path / "demo.log").read_text(errors="replace")
        assert "revoked" in text and "checkpointed" in text  # the final checkpoint reached the broker
        assert "ECONNREFUSED" not in text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    with pytest.raises(OSError):  # the broker went with it
        socket.create_connection(("127.0.0.1", broker_port), timeout=2).close()


def test_demo_refuses_too_few_accounts_before_starting(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "secmon.cli", "demo", "--dir", str(tmp_path), "--accounts", "10"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--accounts must be at least" in out.stderr
