"""``brute_force``: brute force, lockouts (observed and predicted), repeated lockouts and a
success right after an attack — each with a positive case and a hard negative."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from secmon.cli import main
from secmon.config import ConfigError
from secmon.contract import parse_ts_ms
from secmon.detectors.brute_force import Attack, BruteForce, LoginState
from secmon.detectors.registry import resolve
from tests.helpers.detectors import run_events
from tests.helpers.events import DAY, HOUR, MINUTE, SECOND, T0, ev, write_jsonl

ATTACKER = "203.0.113.9"
HOME = "198.51.100.20"


def fail(account: str, ts: int, ip: str = ATTACKER, reason: str = "bad_password") -> dict[str, Any]:
    return ev("login.failed", account, ts, {"reason": reason}, ip=ip, asn=64500)


def ok(account: str, ts: int, ip: str = HOME) -> dict[str, Any]:
    return ev("login.succeeded", account, ts, ip=ip, asn=64511)


def run(events: list[dict[str, Any]], **options: Any):  # type: ignore[no-untyped-def]
    return run_events(events, {BruteForce: options})


def test_a_burst_of_five_failures_in_ten_minutes_opens_one_low_finding() -> None:
    """fail2ban's default: 5 failures within 10 minutes on one account."""
    events = [fail("alice", T0 + i * MINUTE, ip=f"203.0.113.{i}") for i in range(5)]
    found = run(events).latest("brute_force")
    assert len(found) == 1
    f = found[0]
    assert (f.account_id, f.severity, f.explanation["failures"]) == ("alice", "low", 5)
    assert "burst" in f.explanation["triggers"]
    assert f.evidence[0] == events[0]["event_id"]


def test_typos_spread_over_the_day_are_not_brute_force() -> None:
    """Hard negative: four failures per burst window, a success between — no finding."""
    events = []
    for k in range(3):
        base = T0 + k * 3 * HOUR
        events += [fail("bob", base + i * 4 * MINUTE, ip=HOME) for i in range(4)]
        events.append(ok("bob", base + 20 * MINUTE))
    assert run(events).records == []


def test_ten_failures_from_one_ip_over_an_hour_trigger_the_per_ip_count() -> None:
    """Auth0's per (account, IP) count catches a slow attacker the burst rule misses."""
    events = [fail("carol", T0 + i * 6 * MINUTE) for i in range(10)]
    (f,) = run(events).latest("brute_force")
    assert f.explanation["triggers"] == ["per_ip"]
    assert f.explanation["max_failures_one_ip"] == 10
    assert f.subject.ip == ATTACKER


def test_a_2000_attempt_attack_is_one_finding_with_few_revisions_and_bounded_state() -> None:
    events = [fail("dave", T0 + i * 2 * SECOND, ip=f"203.0.113.{i % 7}") for i in range(2000)]
    events.append(fail("zed", T0 + 5 * HOUR))  # moves stream time past the episode's quiet gap
    result = run(events)
    found = [f for f in result.records if f.kind == "brute_force" and f.account_id == "dave"]
    assert len({f.finding_id for f in found}) == 1
    assert len(found) <= 6  # low, medium, high, critical, maybe a doubling, the closing total
    last = max(found, key=lambda f: f.revision)
    assert (last.severity, last.explanation["failures"], last.explanation["episode_over"]) == ("critical", 2000, True)
    state = result.account_task.by_name["brute_force"].state.get("dave")  # type: ignore[union-attr]
    a = state.a
    assert len(a.f) <= 5 and len(a.ips) <= 4 and all(len(t) <= 10 for t in a.ipf)
    assert len(a.ev) <= 10
    assert len(msgspec.msgpack.encode(state)) < 1500


def test_attacks_separated_by_a_quiet_gap_are_two_episodes() -> None:
    first = [fail("erin", T0 + i * MINUTE) for i in range(6)]
    second = [fail("erin", T0 + 5 * HOUR + i * MINUTE) for i in range(6)]
    found = run(first + second).latest("brute_force")
    assert len(found) == 2
    assert {f.evidence[0] for f in found} == {first[0]["event_id"], second[0]["event_id"]}


def test_expired_password_and_unknown_account_failures_are_not_guesses() -> None:
    events = [fail("frank", T0 + i * MINUTE, reason="expired_password") for i in range(8)]
    events += [fail("ghost", T0 + i * MINUTE, reason="unknown_account") for i in range(8)]
    assert run(events).records == []


def test_predicted_lockout_then_observed_lock_is_one_finding_updated() -> None:
    """The 10th failure predicts the platform's lock; the lock updates the same finding."""
    events = [fail("gina", T0 + i * 30 * SECOND) for i in range(10)]
    events.append(ev("account.locked", "gina", T0 + 5 * MINUTE,
                     {"reason": "too_many_failures", "failed_attempts": 10}))
    records = [f for f in run(events).records if f.kind == "account_lockout"]
    assert [r.revision for r in records] == [0, 1]
    assert len({r.finding_id for r in records}) == 1
    assert records[0].explanation["predicted"] is True and records[0].explanation["observed"] is False
    assert records[1].explanation["predicted"] is True and records[1].explanation["observed"] is True


def test_an_admin_lock_without_failures_is_observed_not_predicted() -> None:
    events = [ev("account.locked", "hal", T0, {"reason": "admin", "failed_attempts": 0})]
    (f,) = run(events).latest("account_lockout")
    assert (f.severity, f.explanation["predicted"], f.explanation["observed"]) == ("low", False, True)


def test_a_success_resets_the_lockout_counter() -> None:
    """Hard negative (NIST 800-63B/Keycloak): 9 failures, a success, 9 failures — no lockout."""
    events = [fail("ivy", T0 + i * 20 * MINUTE, ip=HOME) for i in range(9)]
    events.append(ok("ivy", T0 + 3 * HOUR + 10 * MINUTE))
    events += [fail("ivy", T0 + 4 * HOUR + i * 20 * MINUTE, ip=HOME) for i in range(9)]
    assert run(events).latest("account_lockout") == []


def _lock_cycle(account: str, start: int, ip: str = ATTACKER) -> list[dict[str, Any]]:
    events = [fail(account, start + i * 10 * SECOND, ip=ip) for i in range(10)]
    events.append(ev("account.locked", account, start + 2 * MINUTE, {"failed_attempts": 10}))
    events.append(ev("account.unlocked", account, start + 32 * MINUTE, {"by": "timeout"}))
    return events


def test_three_lockouts_in_a_day_are_a_repeated_lockout_and_one_lockout_episode() -> None:
    """Locked four times with no successful login between: one account_lockout finding
    updated per lock (one attack, one finding) and one repeated_lockout."""
    events = [e for k in range(4) for e in _lock_cycle("jack", T0 + k * 2 * HOUR)]
    result = run(events)
    (lock,) = result.latest("account_lockout")
    assert lock.explanation["lockouts"] == 4 and lock.revision >= 4
    (f,) = result.latest("repeated_lockout")
    assert f.explanation["lockouts"] == 3 and f.severity == "medium"  # the 4th does not escalate
    assert len({r.finding_id for r in result.records if r.kind == "repeated_lockout"}) == 1


def test_three_lockouts_over_three_days_are_not_repeated() -> None:
    events = [e for k in range(3) for e in _lock_cycle("kate", T0 + k * (DAY + HOUR))]
    assert run(events).latest("repeated_lockout") == []


def test_success_right_after_an_attack_is_a_suspected_compromise() -> None:
    events = [fail("liam", T0 + i * 20 * SECOND) for i in range(8)]
    events.append(ok("liam", T0 + 4 * MINUTE, ip=ATTACKER))
    (f,) = run(events).latest("compromise_suspected")
    assert f.account_id == "liam" and f.severity == "high"
    assert f.explanation["failures_before_success"] == 8
    assert f.explanation["from_an_attacking_ip"] is True


@pytest.mark.parametrize("typos", [1, 2])
def test_a_user_who_mistypes_once_or_twice_then_succeeds_is_not_compromised(typos: int) -> None:
    events = [fail("mia", T0 + i * 10 * SECOND, ip=HOME) for i in range(typos)]
    events.append(ok("mia", T0 + MINUTE))
    assert run(events).records == []


def test_the_owner_back_on_a_known_device_is_not_a_compromise() -> None:
    """Hard negative: a forgetful user on their usual phone (seen before) after 7 failures."""
    events = [ev("login.succeeded", "rita", T0, ip=HOME, device_id="phone-1")]
    events += [ev("login.failed", "rita", T0 + HOUR + i * 20 * SECOND, ip=HOME, device_id="phone-1") for i in range(7)]
    events.append(ev("login.succeeded", "rita", T0 + HOUR + 3 * MINUTE, ip=HOME, device_id="phone-1"))
    result = run(events)
    assert result.latest("compromise_suspected") == []
    assert [f.kind for f in result.latest()] == ["brute_force"]


def test_a_forgotten_password_reset_then_login_is_not_a_compromise() -> None:
    """Hard negative: locked out, reset by e-mail, logged in on a new laptop."""
    events = [fail("sam", T0 + i * 15 * SECOND, ip=HOME) for i in range(10)]
    events.append(ev("account.locked", "sam", T0 + 3 * MINUTE, {"failed_attempts": 10}))
    events.append(ev("password.reset_requested", "sam", T0 + 6 * MINUTE))
    events.append(ev("password.changed", "sam", T0 + 9 * MINUTE, {"via": "reset"}))
    events.append(ev("account.unlocked", "sam", T0 + 9 * MINUTE + 500, {"by": "password_reset"}))
    events.append(ev("login.succeeded", "sam", T0 + 10 * MINUTE, ip=HOME, device_id="laptop-2"))
    assert run(events).latest("compromise_suspected") == []


def test_a_success_right_after_the_lock_runs_out_is_a_suspected_compromise() -> None:
    """The attacker waits out the 30-minute lock and gets in with the next guess."""
    events = [fail("tom", T0 + i * 4 * SECOND) for i in range(12)]
    events.append(ev("account.locked", "tom", T0 + MINUTE, {"failed_attempts": 10}))
    events.append(ev("account.unlocked", "tom", T0 + 31 * MINUTE, {"by": "timeout"}))
    events.append(ok("tom", T0 + 35 * MINUTE, ip=ATTACKER))
    (f,) = run(events).latest("compromise_suspected")
    assert f.explanation["since"] == "lock_expired" and f.explanation["minutes_since"] == 4.0


def test_a_success_long_after_the_attack_is_not_linked_to_it() -> None:
    events = [fail("noah", T0 + i * 20 * SECOND) for i in range(8)]
    events.append(ok("noah", T0 + 2 * HOUR))
    assert run(events).latest("compromise_suspected") == []


def test_a_lock_after_the_locked_out_side_got_in_starts_a_new_lockout_finding() -> None:
    events = _lock_cycle("lena", T0, ip=HOME)
    events.append(ok("lena", T0 + 40 * MINUTE, ip=HOME))
    events += _lock_cycle("lena", T0 + 2 * HOUR, ip=HOME)
    assert len(run(events).latest("account_lockout")) == 2


def test_the_owner_logging_in_elsewhere_does_not_split_a_lockout_episode() -> None:
    """An old tablet keeps locking the account; the owner's phone gets in between."""
    events = _lock_cycle("lars", T0, ip=HOME)
    events.append(ok("lars", T0 + 40 * MINUTE, ip="203.0.113.200"))
    events += _lock_cycle("lars", T0 + 2 * HOUR, ip=HOME)
    (f,) = run(events).latest("account_lockout")
    assert f.explanation["lockouts"] == 2


def test_state_round_trips_through_msgpack() -> None:
    """What the engine checkpoints restores to the same value."""
    attack = Attack(f=[1, 2], ips=["a"], ipf=[[1]], ep_id="x", ep_rev=2, locks=[5], lock_ids=["l"])
    st = LoginState(dev=(7, 9), locked_until=3, a=attack)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(st), type=LoginState) == st


def test_an_account_without_an_attack_keeps_only_its_devices() -> None:
    """Memory: typos then a success leave no attack counters behind."""
    result = run([fail("quinn", T0, ip=HOME), ok("quinn", T0 + MINUTE)])
    state = result.account_task.by_name["brute_force"].state.get("quinn")  # type: ignore[union-attr]
    assert state.a is None and len(state.dev) == 1


def test_known_devices_are_kept_most_recent_last_and_the_least_recent_goes_first() -> None:
    """Four devices per account, in order of last use: a login from a known device moves it
    last (the latest one stays put), and a fifth device evicts the least recently used."""
    def login(device: str, minutes: int) -> dict[str, Any]:
        return ev("login.succeeded", "una", T0 + minutes * MINUTE, ip=HOME, device_id=device)

    def devices(events: list[dict[str, Any]]) -> tuple[int, ...]:
        return run(events).account_task.by_name["brute_force"].state.get("una").dev  # type: ignore[union-attr, no-any-return]

    events = [login("a", 0), login("b", 1), login("c", 2), login("d", 3)]
    prints = devices(events)
    assert len(prints) == 4
    a, b, c, d = prints
    events += [login("a", 4), login("a", 5)]  # the latest device again changes nothing
    assert devices(events) == (b, c, d, a)
    events.append(login("e", 6))  # b is the least recently used
    assert devices(events)[:3] == (c, d, a)


def test_bad_options_fail_at_start_up() -> None:
    with pytest.raises(ConfigError, match="burst_failures"):
        resolve({"brute_force": {"burst_failures": 0}})
    with pytest.raises(ConfigError):
        resolve({"brute_force": {"no_such_option": 1}})


def test_secmon_replay_reports_the_family_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI: an attack with a lock and a lucky guess, and a user with one typo."""
    events = [fail("olga", T0 + i * 20 * SECOND) for i in range(10)]
    events.append(ev("account.locked", "olga", T0 + 4 * MINUTE, {"failed_attempts": 10}))
    events.append(ev("account.unlocked", "olga", T0 + 34 * MINUTE, {"by": "timeout"}))
    events += [fail("olga", T0 + 35 * MINUTE + i * SECOND) for i in range(5)]
    events.append(ok("olga", T0 + 40 * MINUTE, ip=ATTACKER))
    events += [fail("pete", T0 + MINUTE, ip=HOME), ok("pete", T0 + 2 * MINUTE)]
    path = write_jsonl(tmp_path / "events.jsonl", events)
    out = tmp_path / "findings.jsonl"
    assert main(["replay", str(path), "--findings", str(out), "--no-progress"]) == 0
    findings = [json.loads(line) for line in out.read_text().splitlines()]
    mine = sorted((f["kind"], f["account_id"]) for f in findings
                  if f["kind"] in BruteForce.kinds)
    assert mine == [("account_lockout", "olga"), ("brute_force", "olga"), ("compromise_suspected", "olga")]
    assert "brute_force" in capsys.readouterr().err


def test_an_episode_s_evidence_is_its_own_failures() -> None:
    """An attack that went quiet past the episode gap leaves no ids in the next episode's
    finding: its evidence lies within its own first_seen..last_seen."""
    first = [fail("ev", T0 + i * 30 * SECOND) for i in range(6)]
    second = [fail("ev", T0 + 3 * HOUR + i * 30 * SECOND) for i in range(5)]
    findings = [f for f in run(first + second).latest() if f.kind == "brute_force"]
    assert len(findings) == 2
    newer = max(findings, key=lambda f: f.first_seen)
    assert list(newer.evidence) == [second[0]["event_id"], *(e["event_id"] for e in reversed(second[1:]))]


def test_a_lockout_starts_at_the_failures_it_lists_and_a_lock_for_risk_lists_none() -> None:
    """first_seen is the time of the first evidence (the contract): a predicted lock, and the
    observed lock that confirms it, start at the episode's first failure.  A lock for risk
    hours after an attack that went quiet lists no failure of that attack."""
    attack = [fail("lena", T0 + i * 30 * SECOND) for i in range(10)]
    confirm = ev("account.locked", "lena", T0 + 5 * MINUTE, {"reason": "too_many_failures", "failed_attempts": 10})
    risk = ev("account.locked", "lena", T0 + 2 * DAY, {"reason": "risk", "failed_attempts": 0})
    records = [f for f in run([*attack, confirm, risk]).records if f.kind == "account_lockout"]
    when = {e["event_id"]: parse_ts_ms(e["occurred_at"]) for e in [*attack, confirm, risk]}
    assert [r.revision for r in records] == [0, 1, 0]
    for r in records:
        assert all(parse_ts_ms(r.first_seen) <= when[i] <= parse_ts_ms(r.last_seen) for i in r.evidence), r
    assert parse_ts_ms(records[0].first_seen) == parse_ts_ms(records[1].first_seen) == T0
    assert list(records[2].evidence) == [risk["event_id"]]


def test_a_second_lockout_starts_at_its_own_failures() -> None:
    """Locked, unlocked, in from the failing device, then locked again within the hour: one
    attack episode, but the second lockout starts at the failures that led to it."""
    first = _lock_cycle("nia", T0)
    events = [*first, ok("nia", T0 + 40 * MINUTE, ip=ATTACKER)]
    second = [fail("nia", T0 + 50 * MINUTE + i * 10 * SECOND) for i in range(10)]
    events += [*second, ev("account.locked", "nia", T0 + 53 * MINUTE, {"failed_attempts": 10})]
    latest = run(events).latest("account_lockout")
    assert len(latest) == 2
    assert parse_ts_ms(latest[1].first_seen) == T0 + 50 * MINUTE
    assert set(latest[1].evidence) - {events[-1]["event_id"]} == {e["event_id"] for e in second}
