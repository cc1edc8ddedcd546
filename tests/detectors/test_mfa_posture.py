"""``mfa_posture``: weak 2FA on valuable accounts, and 2FA removed before value leaves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from secmon.cli import main
from secmon.detectors.mfa_posture import MfaPosture
from tests.helpers.detectors import run_events
from tests.helpers.events import DAY, HOUR, MINUTE, T0, ev, write_jsonl


def snap(account: str, ts: int, balance: str, methods: list[str]) -> dict[str, Any]:
    return ev("account.snapshot", account, ts, {"balance_usd": balance, "mfa_methods": methods})


def daily(account: str, balance: str, methods: list[str], days: int, start: int = T0) -> list[dict[str, Any]]:
    return [snap(account, start + d * DAY, balance, methods) for d in range(days)]


def run(events: list[dict[str, Any]], **options: Any):  # type: ignore[no-untyped-def]
    return run_events(events, {MfaPosture: options})


def test_a_valuable_account_without_2fa_is_reported_once_not_daily() -> None:
    result = run(daily("a", "5000.00", [], days=10))
    assert len(result.records) == 1
    (f,) = result.latest("mfa_weak_posture")
    assert (f.severity, f.explanation["posture"], f.explanation["balance_usd"]) == ("low", "no_2fa", 5000.0)


def test_after_the_cooldown_the_finding_is_issued_again() -> None:
    result = run(daily("b", "5000.00", [], days=35))
    assert len(result.latest("mfa_weak_posture")) == 2


def test_severity_grows_with_the_balance_and_updates_the_same_finding() -> None:
    events = [snap("c", T0, "5000.00", ["sms"]), snap("c", T0 + DAY, "250000.00", ["sms"])]
    result = run(events)
    assert [(r.severity, r.revision) for r in result.records] == [("low", 0), ("medium", 1)]
    assert result.latest()[0].explanation["posture"] == "weak_only"


def test_a_whale_with_totp_or_a_security_key_is_fine() -> None:
    """Hard negative: ten million dollars behind TOTP, or webauthn plus SMS."""
    events = daily("whale1", "10000000.00", ["totp"], days=3) + daily("whale2", "8000000.00", ["webauthn", "sms"], days=3)
    assert run(events).records == []


def test_a_small_account_without_2fa_is_below_the_threshold() -> None:
    assert run(daily("d", "999.99", [], days=3)).records == []


def test_a_changed_posture_is_a_new_finding_and_a_strong_factor_resolves_it() -> None:
    events = [snap("e", T0, "5000.00", []), snap("e", T0 + DAY, "5000.00", ["sms"]),
              snap("e", T0 + 2 * DAY, "5000.00", ["sms", "totp"])]
    found = run(events).latest("mfa_weak_posture")
    assert [(f.explanation["posture"], f.status) for f in found] == [("no_2fa", "open"), ("weak_only", "resolved")]


def test_2fa_removed_on_a_valuable_account_after_the_grace_period() -> None:
    events = [snap("f", T0, "30000.00", ["totp"]),
              ev("mfa.disabled", "f", T0 + HOUR, {"method": "totp", "via": "support"}),
              ev("login.failed", "zz", T0 + 2 * HOUR)]  # moves stream time past the grace period
    (f,) = run(events).latest("mfa_disabled_risk")
    assert f.severity == "high" and f.explanation["via"] == "support"
    assert f.explanation["balance_usd_at_removal"] == 30000.0


def test_a_phone_change_is_not_2fa_removal() -> None:
    """Hard negative: TOTP removed and re-enrolled from the same device a minute later."""
    events = [snap("g", T0, "30000.00", ["totp"]),
              ev("mfa.disabled", "g", T0 + HOUR, {"method": "totp", "via": "settings"}, device_id="p1"),
              ev("mfa.enrolled", "g", T0 + HOUR + MINUTE, {"method": "totp"}, device_id="p1"),
              ev("login.failed", "zz", T0 + 3 * HOUR)]
    assert run(events).latest("mfa_disabled_risk") == []


def test_removing_one_of_two_strong_factors_is_not_2fa_removal() -> None:
    """Hard negative (a method swap): webauthn stays after TOTP goes."""
    events = [snap("h", T0, "30000.00", ["totp", "webauthn"]),
              ev("mfa.disabled", "h", T0 + HOUR, {"method": "totp", "via": "settings"}),
              ev("withdrawal.requested", "h", T0 + 2 * HOUR, {"amount_usd": "20000.00"})]
    assert run(events).records == []


def test_2fa_removed_then_a_withdrawal_within_a_day_fires_when_the_money_moves() -> None:
    """Low balance at removal (no finding then), a large withdrawal 3 hours later."""
    events = [snap("i", T0, "500.00", ["push"]),
              ev("mfa.disabled", "i", T0 + HOUR, {"method": "push", "via": "support"}),
              ev("withdrawal.requested", "i", T0 + 4 * HOUR,
                 {"amount_usd": "12000.00", "balance_usd_before": "15000.00"})]
    result = run(events)
    (f,) = result.latest("mfa_disabled_risk")
    assert f.severity == "critical" and f.explanation["withdrawn_usd_since"] == 12000.0
    assert f.detected_at == result.records[0].last_seen
    assert f.evidence[-1] == events[-1]["event_id"]


def test_a_withdrawal_days_after_the_removal_is_not_linked() -> None:
    events = [snap("j", T0, "500.00", ["push"]),
              ev("mfa.disabled", "j", T0 + HOUR, {"method": "push", "via": "settings"}),
              ev("transfer.sent", "j", T0 + 3 * DAY, {"amount_usd": "400.00"})]
    assert run(events).latest("mfa_disabled_risk") == []


def test_a_withdrawal_after_the_removal_finding_updates_it() -> None:
    events = [snap("k", T0, "30000.00", ["totp"]),
              ev("mfa.disabled", "k", T0, {"method": "totp", "via": "support"}),
              ev("login.succeeded", "k", T0 + 30 * MINUTE),
              ev("withdrawal.requested", "k", T0 + HOUR, {"amount_usd": "25000.00"})]
    result = run(events)
    records = [r for r in result.records if r.kind == "mfa_disabled_risk"]
    assert [(r.revision, r.severity) for r in records] == [(0, "high"), (1, "critical")]


def test_secmon_replay_reports_weak_posture(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", daily("l", "40000.00", ["email"], days=3))
    out = tmp_path / "f.jsonl"
    assert main(["replay", str(path), "--findings", str(out), "--no-progress"]) == 0
    (f,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (f["kind"], f["account_id"], f["severity"]) == ("mfa_weak_posture", "l", "low")
