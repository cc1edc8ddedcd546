"""account_takeover: risky access → change → new address → withdrawal to it, escalating one finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secmon.contract import parse_ts_ms
from secmon.detectors.account_takeover import AccountTakeover, AccountTakeoverConfig
from secmon.detectors.registry import DetectorSpec
from tests.helpers.detectors import run_events
from tests.helpers.events import DAY, HOUR, MINUTE, T0, ev, geo, replay_findings

HOME: dict[str, Any] = {"device_id": "d-home", "geo": geo("DE")}
EVIL: dict[str, Any] = {"device_id": "d-evil", "geo": geo("NG")}


def spec(**options: object) -> DetectorSpec:
    return DetectorSpec(AccountTakeover, AccountTakeoverConfig(**options))  # type: ignore[arg-type]


def history(account: str = "w1") -> list[dict]:
    """A week of ordinary logins from the owner's device."""
    return [ev("login.succeeded", account, T0 - d * DAY, **HOME) for d in range(7, 0, -1)]


def takeover(account: str = "w1", t: int = T0, withdraw_to: str | None = "T-evil") -> list[dict]:
    events = [
        ev("login.succeeded", account, t, **EVIL),
        ev("password.changed", account, t + 5 * MINUTE, **EVIL),
        ev("address.added", account, t + 10 * MINUTE, {"address": "T-evil"}, **EVIL),
    ]
    if withdraw_to:
        events.append(
            ev("withdrawal.requested", account, t + 12 * MINUTE,
               {"tx_id": "wd-x", "to_address": withdraw_to, "amount": "900.00", "amount_usd": "900.00"}, **EVIL)
        )  # fmt: skip
    return events


def test_full_sequence_escalates_one_finding_to_critical(tmp_path: Path) -> None:
    """New device and country, password change, new address, withdrawal to it: high, then critical."""
    high, critical = replay_findings(tmp_path, history() + takeover(), [spec()])
    assert high.kind == critical.kind == "account_takeover"
    assert (high.severity, high.revision) == ("high", 0)
    assert (critical.severity, critical.revision) == ("critical", 1)
    assert high.finding_id == critical.finding_id
    assert critical.subject.tx_id == "wd-x" and critical.subject.address == "T-evil"
    assert critical.explanation["recommended_action"] == "hold_withdrawals"
    assert high.explanation["recommended_action"] == "hold_withdrawals"
    assert critical.explanation["complete"] is True
    why = critical.explanation["steps"]["risky_access"]["why"][0]
    assert "new device" in why and "new country (NG" in why
    assert critical.explanation["steps"]["change"]["what"] == ["password.changed"]
    assert critical.evidence[0].startswith("e")  # the withdrawal first


def test_password_change_without_withdrawal_is_not_a_finding(tmp_path: Path) -> None:
    """Hard negative: a new phone and a password change, nothing else."""
    events = [*history(), *takeover()[:2]]
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_change_and_address_without_withdrawal_is_high_once(tmp_path: Path) -> None:
    """Partial sequence: one high finding, no escalation, even with a second new address."""
    events = [*history(), *takeover(withdraw_to=None), ev("address.added", "w1", T0 + HOUR, {"address": "T-2"})]
    (high,) = replay_findings(tmp_path, events, [spec()])
    assert high.severity == "high" and high.explanation["complete"] is False


def test_withdrawal_to_another_address_does_not_escalate(tmp_path: Path) -> None:
    """Only a withdrawal to an address added during the episode completes the sequence."""
    records = replay_findings(tmp_path, history() + takeover(withdraw_to="T-owner-old"), [spec()])
    assert [r.severity for r in records] == ["high"]


def test_login_after_many_failures_is_a_risky_access(tmp_path: Path) -> None:
    """An account under attack: 6 failures then a success from the known device starts the sequence."""
    fails = [ev("login.failed", "w1", T0 - 30 * MINUTE + i * MINUTE, **EVIL) for i in range(6)]
    seq = takeover()
    seq[0] = ev("login.succeeded", "w1", T0, **HOME)
    records = replay_findings(tmp_path, history() + fails + seq, [spec()])
    assert [r.severity for r in records] == ["high", "critical"]
    assert "6 failed attempts" in records[0].explanation["steps"]["risky_access"]["why"][0]


def test_first_login_of_an_account_is_not_new(tmp_path: Path) -> None:
    """Hard negative: without a known device or country nothing is "new" (a normal sign-up)."""
    assert replay_findings(tmp_path, takeover(), [spec()]) == []


def test_sequence_must_fit_in_the_window(tmp_path: Path) -> None:
    """A change a day and a half after the access does not continue it."""
    events = history() + takeover()
    for e, delay in zip(events[-3:], (36 * HOUR, 37 * HOUR, 38 * HOUR), strict=True):
        e["occurred_at"] = ev("login.failed", "x", T0 + delay)["occurred_at"]
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_compromise_suspected_finding_of_the_same_task_is_a_risky_access(tmp_path: Path) -> None:
    """brute_force's compromise_suspected (same task, via on_finding) opens the sequence on an
    account with no device history, with this detector's own failure rule out of reach."""
    from secmon.detectors.brute_force import BruteForce

    fails = [ev("login.failed", "w1", T0 - 10 * MINUTE + i * MINUTE, ip="203.0.113.9", **EVIL) for i in range(6)]
    detectors = [DetectorSpec(BruteForce, BruteForce.Config(compromise_min_failures=5)), spec(attack_min_failures=1000)]
    records = replay_findings(tmp_path, fails + takeover(), detectors)
    assert "compromise_suspected" in {r.kind for r in records}
    ato = [r for r in records if r.kind == "account_takeover"]
    assert [r.severity for r in ato] == ["high", "critical"]
    assert "compromise suspected" in ato[0].explanation["steps"]["risky_access"]["why"][0]


def test_changes_from_the_owners_known_device_do_not_count(tmp_path: Path) -> None:
    """Hard negative: a second phone logs in, but the password change, new address and withdrawal
    come from the owner's usual device."""
    events = [
        *history(),
        ev("password.changed", "w1", T0 - 10 * MINUTE, **HOME),
        ev("login.succeeded", "w1", T0, device_id="d-second-phone", geo=geo("DE")),
        ev("contact.changed", "w1", T0 + 5 * MINUTE, **HOME),
        ev("address.added", "w1", T0 + 10 * MINUTE, {"address": "T-mine"}, **HOME),
        ev("withdrawal.requested", "w1", T0 + 12 * MINUTE, {"tx_id": "wd-m", "to_address": "T-mine"}, **HOME),
    ]
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_new_2fa_method_counts_as_a_change_and_a_large_transfer_as_value_out(tmp_path: Path) -> None:
    """Attacker enrols their own TOTP, then transfers most of the balance: critical at once."""
    events = [
        *history(),
        ev("login.succeeded", "w1", T0, **EVIL),
        ev("mfa.enrolled", "w1", T0 + 3 * MINUTE, **EVIL),
        ev("transfer.sent", "w1", T0 + 9 * MINUTE,
           {"tx_id": "tr-x", "amount": "1800.00", "amount_usd": "1800.00", "balance_usd_before": "2000.00"}, **EVIL),
    ]  # fmt: skip
    (f,) = replay_findings(tmp_path, events, [spec()])
    assert (f.severity, f.revision) == ("critical", 0)
    assert f.subject.tx_id == "tr-x" and f.subject.address is None
    assert f.explanation["sequence"] == ["risky_access", "change", "transfer"]
    assert "a new 2FA method enrolled" in f.summary


def test_small_transfer_after_access_and_change_is_not_value_out(tmp_path: Path) -> None:
    """Hard negative: a new phone, a password change and a 10 % transfer to a friend."""
    events = [
        *history(),
        *takeover()[:2],
        ev("transfer.sent", "w1", T0 + 9 * MINUTE,
           {"tx_id": "tr-x", "amount": "200.00", "amount_usd": "200.00", "balance_usd_before": "2000.00"}, **EVIL),
    ]  # fmt: skip
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_reset_just_before_the_new_device_login_counts_as_the_change(tmp_path: Path) -> None:
    """Support removes 2FA, the attacker resets the password, then logs in with it: the change
    precedes the access by minutes and still counts."""
    events = [
        *history(),
        ev("mfa.disabled", "w1", T0 - 20 * MINUTE, {"via": "support"}),
        ev("password.reset_requested", "w1", T0 - 15 * MINUTE, **EVIL),
        ev("password.changed", "w1", T0 - 10 * MINUTE, {"via": "reset"}, **EVIL),
        *takeover()[0:1],
        *takeover()[2:],
    ]
    high, critical = replay_findings(tmp_path, events, [spec()])
    assert (high.severity, critical.severity) == ("high", "critical")
    assert critical.explanation["steps"]["change"]["what"] == ["mfa.disabled", "password.changed"]
    # first_seen is the first evidence's time (the contract): the earliest change, before the access.
    when = {e["event_id"]: parse_ts_ms(e["occurred_at"]) for e in events}
    for f in (high, critical):
        assert parse_ts_ms(f.first_seen) == T0 - 20 * MINUTE
        assert all(parse_ts_ms(f.first_seen) <= when[i] <= parse_ts_ms(f.last_seen) for i in f.evidence)


def test_change_long_before_the_access_does_not_count(tmp_path: Path) -> None:
    """A password changed two hours before a new-device login is the owner's business."""
    events = [
        *history(),
        ev("password.changed", "w1", T0 - 2 * HOUR, **HOME),
        *takeover()[0:1],
        *takeover()[2:],
    ]
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_unknown_account_failures_neither_count_nor_hold_state(tmp_path: Path) -> None:
    """A combo list is mostly names the platform does not know: no account to take over, so
    no state is kept for them (a storm of them would otherwise sit in memory for a month)
    and they do not make a later success risky."""
    fails = [ev("login.failed", "w1", T0 - 30 * MINUTE + i * MINUTE, {"reason": "unknown_account"}, **EVIL)
             for i in range(6)]
    seq = takeover()
    seq[0] = ev("login.succeeded", "w1", T0, **HOME)
    assert replay_findings(tmp_path, history() + fails + seq, [spec()]) == []
    combo = [ev("login.failed", f"nobody{i}", T0 + i, {"reason": "unknown_account"}, **EVIL) for i in range(50)]
    task = run_events(combo, {AccountTakeover: {}}).account_task
    assert task is not None and len(task.by_name["account_takeover"].state) == 0
