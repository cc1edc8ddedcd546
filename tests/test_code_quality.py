"""The code base stays ruff clean and type-checks (mypy), as the brief asks: checked by the
test command, so CI gates on it.  The tests type-check too (one run over all three trees)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "secmon", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing() -> None:
    result = _run("mypy", "secmon", "bench", "tests")
    assert result.returncode == 0, result.stdout + result.stderr
