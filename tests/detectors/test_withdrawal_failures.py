"""withdrawal_failures: repeated failures per account, owner of the fix, forwarding to the outage detector."""

from __future__ import annotations

from pathlib import Path

from secmon.detectors.base import SourceRecord
from secmon.detectors.registry import DetectorSpec
from secmon.detectors.withdrawal_failures import WithdrawalFailures, WithdrawalFailuresConfig
from secmon.engine.task import Task, TaskHooks
from tests.helpers.events import HOUR, MINUTE, T0, decoded, ev, replay_findings


def spec(**options: object) -> DetectorSpec:
    return DetectorSpec(WithdrawalFailures, WithdrawalFailuresConfig(**options))  # type: ignore[arg-type]


def attempt(account: str, tx: str, ts: int, reason: str | None, network: str = "TRON") -> list[dict]:
    """A withdrawal request followed a minute later by its failure (or completion)."""
    req = ev("withdrawal.requested", account, ts, {"tx_id": tx, "network": network})
    if reason is None:
        return [req, ev("withdrawal.completed", account, ts + MINUTE, {"tx_id": tx})]
    return [req, ev("withdrawal.failed", account, ts + MINUTE, {"tx_id": tx, "reason": reason})]


def test_three_platform_failures_within_an_hour(tmp_path: Path) -> None:
    """3 bank rejections in 40 min: one medium finding, the platform's to fix, with its outage key."""
    events = [e for i in range(3) for e in attempt("w1", f"wd-{i}", T0 + i * 20 * MINUTE, "bank_rejected", "SEPA")]
    (f,) = replay_findings(tmp_path, events, [spec()])
    assert f.kind == "withdrawal_failures" and f.account_id == "w1" and f.severity == "medium"
    assert f.explanation["owner"] == "platform" and f.explanation["reasons"] == {"bank_rejected": 3}
    assert f.explanation["outage_key"] == "wdfail:bank_rejected:SEPA"
    assert f.subject.network == "SEPA" and f.subject.reason == "bank_rejected" and f.subject.tx_id == "wd-2"
    assert "ours to fix" in f.summary
    assert len(f.evidence) == 3


def test_account_mismatch_is_the_users_to_fix(tmp_path: Path) -> None:
    """Three account mismatches: owner user, low severity; the platform failure between is listed apart."""
    reasons = ["account_mismatch", "chain_error", "account_mismatch", "account_mismatch"]
    events = [e for i, r in enumerate(reasons) for e in attempt("w1", f"wd-{i}", T0 + i * 10 * MINUTE, r)]
    (f,) = replay_findings(tmp_path, events, [spec()])
    assert f.explanation["owner"] == "user" and f.severity == "low"
    assert f.explanation["reasons"] == {"account_mismatch": 3}
    assert f.explanation["other_failures"] == {"chain_error": "platform"}
    assert "the user must fix it" in f.summary


def test_failures_of_different_owners_are_not_counted_together(tmp_path: Path) -> None:
    """Two chain errors and a limit hit within the hour: two stories, neither repeated."""
    reasons = ["chain_error", "limit_exceeded", "chain_error"]
    events = [e for i, r in enumerate(reasons) for e in attempt("w1", f"wd-{i}", T0 + i * 10 * MINUTE, r)]
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_two_failures_then_a_success_is_not_a_finding(tmp_path: Path) -> None:
    """Hard negative: the success ends the episode; a later failure starts a new count."""
    events = [
        *attempt("w1", "wd-0", T0, "bank_rejected"),
        *attempt("w1", "wd-1", T0 + 5 * MINUTE, "bank_rejected"),
        *attempt("w1", "wd-2", T0 + 10 * MINUTE, None),
        *attempt("w1", "wd-3", T0 + 15 * MINUTE, "bank_rejected"),
    ]
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_failures_spread_beyond_the_window_are_not_counted_together(tmp_path: Path) -> None:
    """Three failures over more than an hour do not make a burst."""
    events = [e for i in range(3) for e in attempt("w1", f"wd-{i}", T0 + i * 40 * MINUTE, "chain_error")]
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_one_finding_per_episode_and_a_new_one_after_a_quiet_hour(tmp_path: Path) -> None:
    """Failures 4 and 5 belong to the open episode; after an hour without failures a new one opens."""
    burst1 = [e for i in range(5) for e in attempt("w1", f"a-{i}", T0 + i * 5 * MINUTE, "chain_error")]
    burst2 = [e for i in range(3) for e in attempt("w1", f"b-{i}", T0 + 3 * HOUR + i * 5 * MINUTE, "chain_error")]
    records = replay_findings(tmp_path, burst1 + burst2, [spec()])
    assert len(records) == 2 and records[0].finding_id != records[1].finding_id


def test_failures_are_forwarded_with_network_origin_and_increasing_seq() -> None:
    """Each failure reaches the source tasks keyed by reason and network, stamped for dedup."""
    forwarded: list[SourceRecord] = []
    task = Task("a", [WithdrawalFailures(WithdrawalFailuresConfig())], emit=lambda f: None, forward=forwarded.append)
    events = [e for i in range(2) for e in attempt(f"w{i}", f"wd-{i}", T0 + i * MINUTE, "chain_error", "ETH")]
    for offset, e in enumerate(events):
        task.process(decoded(e), "wallet.events/0", offset)
    assert [r.key for r in forwarded] == ["wdfail:chain_error:ETH"] * 2
    assert [r.account_id for r in forwarded] == ["w0", "w1"]
    assert all(r.origin == "wallet.events/0" and r.amount_usd == 100.0 for r in forwarded)
    assert forwarded[0].seq < forwarded[1].seq


def test_failure_of_an_unknown_withdrawal_counts_with_unknown_network(tmp_path: Path) -> None:
    """A failure whose request was never seen still counts (network "unknown")."""
    events = [
        ev("withdrawal.failed", "w1", T0 + i * MINUTE, {"tx_id": f"x{i}", "reason": "chain_error"}) for i in range(3)
    ]
    (f,) = replay_findings(tmp_path, events, [spec()])
    assert f.subject.network == "unknown"


def test_without_source_detectors_nothing_is_forwarded_and_nothing_fails() -> None:
    """withdrawal_outage disabled (no source task wired): the account finding still comes, no error."""
    records: list = []
    errors: list[str] = []
    task = Task(
        "a",
        [WithdrawalFailures(WithdrawalFailuresConfig())],
        emit=records.append,
        hooks=TaskHooks(detector_error=lambda name, exc: errors.append(f"{name}: {exc}")),
    )
    for offset, e in enumerate(e for i in range(3) for e in attempt("w1", f"wd-{i}", T0 + i * MINUTE, "chain_error")):
        task.process(decoded(e), "wallet.events/0", offset)
    assert errors == [] and [r.kind for r in records] == ["withdrawal_failures"]
