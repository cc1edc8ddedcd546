"""``secmon replay``: findings out, dead letters out, byte-identical on a re-run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import CONTRACT_EXAMPLES
from tests.helpers.events import MINUTE, T0, ev, write_jsonl


def _replay(tmp_path: Path, events_file: Path, name: str) -> tuple[bytes, list[dict]]:
    findings, dlq = tmp_path / f"{name}.findings.jsonl", tmp_path / f"{name}.dlq.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "secmon.cli", "replay", str(events_file), "--findings", str(findings),
         "--dlq", str(dlq), "--no-progress"],
        capture_output=True, text=True, check=True,
    )
    assert "replayed" in proc.stderr
    return findings.read_bytes(), [json.loads(line) for line in dlq.read_text().splitlines()]


def test_replay_twice_gives_byte_identical_findings_and_keeps_bad_records(tmp_path: Path) -> None:
    events = [json.loads(line) for line in CONTRACT_EXAMPLES.read_text().splitlines()]
    events += [ev("password.changed", f"w{i}", T0 + i * MINUTE, {"strength": i % 2, "breached": i % 3 == 0})
               for i in range(30)]
    path = write_jsonl(tmp_path / "events.jsonl", events)
    with path.open("a") as fh:
        fh.write("this is not json\n")
        fh.write(json.dumps({**events[0], "event_type": "login.teleported"}) + "\n")
    first, dlq = _replay(tmp_path, path, "a")
    second, _ = _replay(tmp_path, path, "b")
    assert first == second
    findings = [json.loads(line) for line in first.decode().splitlines()]
    assert len({f["finding_id"] for f in findings}) == len(findings) >= 30
    assert {d["reason"] for d in dlq} == {"not_json", "unknown_event_type"}
    assert all(d["topic"] == f"file:{path}" and d["offset"] >= len(events) for d in dlq)


def test_replay_orders_an_unsorted_file_by_event_time(tmp_path: Path) -> None:
    """Files are only ordered per account; replay sorts by occurred_at so timers are right."""
    from secmon.detectors.registry import resolve
    from secmon.engine.pipeline import Pipeline
    from secmon.runtime.replay import replay

    a = [ev("password.changed", "a", T0 + 10 * MINUTE, {"strength": 0})]
    b = [ev("password.changed", "b", T0 + i * MINUTE, {"strength": 0}) for i in range(3)]
    path = write_jsonl(tmp_path / "e.jsonl", a + b)
    result = replay([path], Pipeline(resolve({})))
    assert [f.account_id for f in result.findings] == ["b", "b", "b", "a"]
