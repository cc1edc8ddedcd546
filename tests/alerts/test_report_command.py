"""``secmon report cases``: the weekly view of what users run into."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from secmon.cli import main
from secmon.commands.report import duration
from tests.alerts.conftest import NOW, committer, finding, layer_for
from tests.helpers.events import HOUR, MINUTE


def test_report_cases_table_and_json(engine: Engine, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    layer = layer_for(engine)
    c = committer(engine, layer)
    for i, took in enumerate((30 * MINUTE, 2 * HOUR)):
        c.commit([finding("deposit_delayed", f"u{i}", key=f"u{i}:1")], [], None, NOW)
        c.commit([finding("deposit_delayed", f"u{i}", key=f"u{i}:1", status="resolved", revision=1)], [], None,
                 NOW + took)  # fmt: skip
    c.commit([finding("account_lockout", "v", severity="medium")], [], None, NOW)
    assert main(["report", "cases", "--since", "2026-11-01", "--until", "2026-11-08", "--store", db_url]) == 0
    out = capsys.readouterr().out
    assert "Support cases opened 2026-11-01 00:00 → 2026-11-08 00:00 (UTC)" in out
    dw = next(line for line in out.splitlines() if line.startswith("Deposit & withdrawal"))
    assert dw.split()[3:7] == ["2", "2", "0", "0"] and dw.rstrip().endswith("1h 15m")
    assert any(line.split() == ["deposit_delayed", "2"] for line in out.splitlines())
    assert main(["report", "cases", "--since", "2026-11-01T00:00:00Z", "--store", db_url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"]["opened"] == 3 and doc["kinds"] == {"deposit_delayed": 2, "account_lockout": 1}
    login = next(x for x in doc["categories"] if x["category"] == "login_lockout")
    assert login["breached"] == 1 and login["breach_rate"] == 1.0  # a P3 opened weeks ago, still open
    assert main(["report", "cases", "--since", "2026-11-05", "--until", "2026-11-06", "--store", db_url,
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["total"]["opened"] == 0


def test_bad_dates_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "cases", "--since", "last tuesday"])
    with pytest.raises(SystemExit):
        main(["report", "cases", "--since", "2026-11-01T00:00:00"])  # no offset


def test_duration_formatting() -> None:
    assert [duration(x) for x in (None, 7 * MINUTE, 2 * HOUR + 5 * MINUTE, 27 * HOUR)] == ["-", "7m", "2h 05m", "1d 3h"]
