"""``secmon audit-mfa``: the detectors' MFA checks over an export, as a table."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from secmon.cli import main
from secmon.commands.audit_mfa import audit_files
from tests.helpers.events import DAY, T0, ev, write_jsonl


def strong() -> str:
    return base64.b32encode(os.urandom(20)).decode().rstrip("=")


def uri(account: str, secret: str) -> str:
    return f"otpauth://totp/Wallet:{account}?secret={secret}&issuer=Wallet"


def export(tmp_path: Path) -> Path:
    shared = strong()
    lines = [
        ev("account.snapshot", "rich", T0, {"balance_usd": "250000.00", "mfa_methods": []}),
        ev("account.snapshot", "rich", T0 - DAY, {"balance_usd": "10.00", "mfa_methods": ["totp"]}),  # older
        {"account_id": "smsy", "balance_usd": "50000", "mfa_methods": ["sms"]},
        {"account_id": "whale", "balance_usd": 9_000_000, "mfa_methods": ["webauthn"]},
        ev("mfa.enrolled", "demo", T0, {"method": "totp", "otpauth_uri": uri("demo", "JBSWY3DPEHPK3PXP")}),
        {"account_id": "twin1", "otpauth_uri": uri("twin1", shared)},
        {"account_id": "twin2", "otpauth_uri": uri("twin2", shared)},
        {"account_id": "fine", "otpauth_uri": uri("fine", strong())},
        ev("login.succeeded", "fine", T0),
    ]
    path = write_jsonl(tmp_path / "export.jsonl", lines)
    with path.open("a") as fh:
        fh.write("not json\n\n")
    return path


def test_the_table_counts_each_check_and_unreadable_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = export(tmp_path)
    out = tmp_path / "flagged.jsonl"
    assert main(["audit-mfa", str(path), "--out", str(out), "--no-progress"]) == 0
    table = capsys.readouterr().out
    rows = {line.split()[0] + " " + line.split()[1]: line.split()[2:] for line in table.splitlines()
            if line.startswith(("posture:", "totp:"))}
    assert rows["posture: no_2fa"][:3] == ["1", "0", "1"]  # one account, high (its latest snapshot)
    assert rows["posture: weak_only"][0] == "1"
    assert rows["totp: known_example_secret"][:2] == ["1", "1"]
    assert rows["totp: secret_reused"][0] == "2"
    assert "1 unreadable, 1 other events" in table
    flagged = {r["account_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(flagged) == {"rich", "smsy", "demo", "twin1", "twin2"}
    assert flagged["rich"]["posture"]["severity"] == "high"
    assert flagged["twin1"]["secret_shared_with_accounts"] == 2
    assert "JBSWY3DPEHPK3PXP" not in out.read_text() and "otpauth://" not in out.read_text()


def test_fail_on_issues_sets_the_exit_code(tmp_path: Path) -> None:
    assert main(["audit-mfa", str(export(tmp_path)), "--fail-on-issues", "--no-progress"]) == 1
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"account_id": "ok", "otpauth_uri": uri("ok", strong())}])
    assert main(["audit-mfa", str(clean), "--fail-on-issues", "--no-progress"]) == 0


def test_thresholds_come_from_the_detector_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("detectors:\n  mfa_posture:\n    min_balance_usd: 1000000\n"
                      "  mfa_weak_secret:\n    max_period_s: 30\n")
    audit = audit_files([export(tmp_path)], str(config))
    assert [check for check, _ in audit.table()] == [
        "totp: known_example_secret", "totp: short_secret", "totp: secret_reused"]


def test_a_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit-mfa", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_the_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit_files([export(tmp_path)], progress=True)
    assert "audit-mfa" in capsys.readouterr().err
