"""``mfa_bruteforce``: failed second-factor challenges, with the attacker's odds."""

from __future__ import annotations

from typing import Any

from secmon.detectors.mfa_bruteforce import MfaBruteforce
from tests.helpers.detectors import run_events
from tests.helpers.events import HOUR, MINUTE, SECOND, T0, ev

ATTACKER = {"ip": "203.0.113.66", "device_id": "bot-1"}
OWNER = {"ip": "198.51.100.5", "device_id": "phone-1"}


def failed(account: str, ts: int, who: dict[str, str] = ATTACKER, method: str = "totp") -> dict[str, Any]:
    return ev("mfa.challenge_failed", account, ts, {"method": method}, **who)


def passed(account: str, ts: int, who: dict[str, str] = ATTACKER, method: str = "totp") -> dict[str, Any]:
    return ev("mfa.challenge_succeeded", account, ts, {"method": method}, **who)


def run(events: list[dict[str, Any]], **options: Any):  # type: ignore[no-untyped-def]
    return run_events(events, {MfaBruteforce: options})


def test_five_failed_codes_in_five_minutes_open_a_finding_with_the_odds() -> None:
    (f,) = run([failed("a", T0 + i * 30 * SECOND) for i in range(5)]).latest()
    assert (f.account_id, f.severity, f.explanation["failed_challenges"]) == ("a", "medium", 5)
    assert f.explanation["valid_codes_per_try"] == 3
    assert f.explanation["odds"] == "5 tries: 0.0015%"


def test_the_odds_grow_and_the_severity_with_them() -> None:
    """1,240 tries at ±1 step: a 0.37 % chance; above 0.1 % is high."""
    events = [failed("b", T0 + i * 2 * SECOND) for i in range(1240)]
    result = run(events)
    assert len(result.latest()) == 1
    last = result.latest()[0]
    assert last.severity == "high"
    assert last.explanation["failed_challenges"] >= 334
    assert len(result.records) <= 5


def test_a_code_accepted_after_the_failures_is_critical() -> None:
    events = [failed("c", T0 + i * 20 * SECOND) for i in range(8)] + [passed("c", T0 + 4 * MINUTE)]
    (f,) = run(events).latest()
    assert f.severity == "critical" and f.explanation["accepted_after_failures"] is True


def test_a_user_fumbling_codes_then_passing_is_not_an_attack() -> None:
    """Hard negative: four wrong codes, then the right one, on the user's own phone."""
    events = [failed("d", T0 + i * 15 * SECOND, OWNER) for i in range(4)] + [passed("d", T0 + MINUTE, OWNER)]
    events += [failed("d", T0 + 2 * HOUR + i * 15 * SECOND, OWNER) for i in range(4)]
    assert run(events).records == []


def test_a_settled_account_holds_no_state() -> None:
    """Once every failing device has passed, nothing is kept: the account's next passed
    challenges cost one lookup, and the owner passing elsewhere mid-attack keeps the attack."""
    settled = [failed("k", T0 + i * 15 * SECOND, OWNER) for i in range(4)] + [passed("k", T0 + MINUTE, OWNER)]
    attacked = [failed("m", T0 + i * 15 * SECOND) for i in range(3)] + [passed("m", T0 + MINUTE, OWNER)]
    task = run(settled + attacked).account_task
    assert task is not None
    state = task.by_name["mfa_bruteforce"].state
    assert "k" not in state and "m" in state


def test_slow_push_fatigue_is_caught_by_the_episode_count() -> None:
    """A prompt every 4 minutes never makes 5 in 5 minutes, but 10 in one episode do."""
    events = [failed("e", T0 + i * 4 * MINUTE, method="push") for i in range(12)]
    (f,) = run(events).latest()
    assert f.explanation["failed_challenges"] >= 10 and f.explanation["odds"] is None
    assert "push" in f.summary


def test_the_owner_passing_on_another_device_does_not_end_the_attack() -> None:
    events = [failed("f", T0 + i * 3 * MINUTE, method="push") for i in range(7)]
    events.append(passed("f", T0 + 20 * MINUTE, OWNER, method="push"))
    events += [failed("f", T0 + 22 * MINUTE + i * 3 * MINUTE, method="push") for i in range(4)]
    (f,) = run(events).latest()
    assert f.explanation["failed_challenges"] == 10  # 7 before the owner's login, 3 after
    assert f.evidence[0] == events[0]["event_id"]


def test_occasional_failures_over_a_day_are_not_an_attack() -> None:
    events = [failed("g", T0 + i * 2 * HOUR, OWNER) for i in range(12)]
    assert run(events).records == []


def test_login_failed_bad_mfa_is_counted_only_when_configured() -> None:
    events = [ev("login.failed", "h", T0 + i * 20 * SECOND, {"reason": "bad_mfa"}, **ATTACKER) for i in range(6)]
    assert run(events).records == []
    assert run(events, count_login_bad_mfa=True).kinds() == ["mfa_bruteforce"]


def test_an_episode_s_evidence_is_its_own_failures() -> None:
    """A settled episode (the owner fumbled, then passed) and one that went quiet (past the
    episode gap) leave no ids in the next episode's finding: its evidence lies within its
    own first_seen..last_seen."""
    events = [failed("i", T0 + i * 15 * SECOND, OWNER) for i in range(4)] + [passed("i", T0 + MINUTE, OWNER)]
    events += [failed("i", T0 + HOUR + i * 15 * SECOND, OWNER) for i in range(3)]  # quiet afterwards
    attack = [failed("i", T0 + 6 * HOUR + i * 30 * SECOND) for i in range(5)]
    (f,) = run(events + attack).latest()
    assert list(f.evidence) == [attack[0]["event_id"], *(e["event_id"] for e in reversed(attack[1:]))]
