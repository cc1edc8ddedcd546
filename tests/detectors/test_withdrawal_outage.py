"""withdrawal_outage: many accounts failing the same way at once, resolved when failures stop."""

from __future__ import annotations

from pathlib import Path

from secmon.contract import parse_ts_ms
from secmon.detectors.registry import DetectorSpec
from secmon.detectors.withdrawal_failures import WithdrawalFailures, WithdrawalFailuresConfig
from secmon.detectors.withdrawal_outage import WithdrawalOutage, WithdrawalOutageConfig
from tests.helpers.events import HOUR, MINUTE, SECOND, T0, ev, replay_findings


def specs(**options: object) -> list[DetectorSpec]:
    return [
        DetectorSpec(WithdrawalFailures, WithdrawalFailuresConfig()),
        DetectorSpec(WithdrawalOutage, WithdrawalOutageConfig(**options)),  # type: ignore[arg-type]
    ]


def failure(account: str, ts: int, reason: str = "chain_error", network: str = "ETH") -> list[dict]:
    tx = f"wd-{account}-{ts}"
    return [
        ev("withdrawal.requested", account, ts, {"tx_id": tx, "network": network}),
        ev("withdrawal.failed", account, ts + SECOND, {"tx_id": tx, "reason": reason}),
    ]


def clock(ts: int) -> dict:
    return ev("login.succeeded", "w-clock", ts)


def outages(records: list) -> list:
    return [r for r in records if r.kind == "withdrawal_outage"]


def test_25_accounts_failing_within_minutes_is_one_platform_outage_then_resolved(tmp_path: Path) -> None:
    """25 accounts in 3 min: one open finding (no account); 15 quiet minutes resolve it."""
    events = [e for i in range(25) for e in failure(f"w{i:02d}", T0 + i * 7 * SECOND)]
    events.append(clock(T0 + HOUR))
    opened, resolved = outages(replay_findings(tmp_path, events, specs()))
    assert opened.account_id is None and opened.status == "open" and opened.severity == "high"
    assert opened.subject.reason == "chain_error" and opened.subject.network == "ETH"
    assert opened.explanation["outage_key"] == "wdfail:chain_error:ETH"
    assert opened.explanation["accounts_in_window"] == 20 and opened.explanation["trigger"] == "accounts"
    assert resolved.finding_id == opened.finding_id and resolved.status == "resolved" and resolved.revision == 1
    assert resolved.explanation["accounts_affected"] == 25


def test_the_per_account_findings_name_the_outage_key(tmp_path: Path) -> None:
    """Accounts failing repeatedly during the outage can be grouped under it by the action layer."""
    events = [e for i in range(20) for e in failure(f"w{i:02d}", T0 + i * 5 * SECOND)]
    events += [e for k in range(1, 3) for e in failure("w00", T0 + k * MINUTE)]
    records = replay_findings(tmp_path, events, specs())
    (outage,) = outages(records)
    (account,) = [r for r in records if r.kind == "withdrawal_failures"]
    assert account.explanation["outage_key"] == outage.explanation["outage_key"]


def test_failures_spread_over_hours_or_reasons_are_not_an_outage(tmp_path: Path) -> None:
    """Hard negative: 30 accounts over 5 h, or 18 accounts at once split over 3 reasons, stay below the bar."""
    spread = [e for i in range(30) for e in failure(f"s{i:02d}", T0 + i * 10 * MINUTE)]
    mixed = [
        e
        for i in range(18)
        for e in failure(
            f"m{i:02d}", T0 + 6 * HOUR + i * 5 * SECOND, ("chain_error", "bank_rejected", "risk_hold")[i % 3]
        )
    ]
    assert outages(replay_findings(tmp_path, spread + mixed, specs())) == []


def test_a_rate_far_above_the_usual_opens_an_outage_after_the_baseline_is_known(tmp_path: Path) -> None:
    """9 accounts in 5 min: an outage where the key usually sees few failures, not on a key without history."""
    history = [e for i in range(8) for e in failure(f"h{i:02d}", T0 + i * 15 * MINUTE, network="SOL")]
    burst = [e for i in range(9) for e in failure(f"b{i}", T0 + 2 * HOUR + 30 * SECOND * i, network="SOL")]
    fresh = [e for i in range(9) for e in failure(f"f{i}", T0 + 2 * HOUR + 30 * SECOND * i, network="TRON")]
    found = outages(replay_findings(tmp_path, history + burst + fresh, specs()))
    assert {f.subject.network for f in found} == {"SOL"}
    assert found[0].explanation["trigger"] == "rate"


def test_a_large_outage_escalates_to_critical(tmp_path: Path) -> None:
    """Past critical_accounts the same finding is re-emitted as critical."""
    events = [e for i in range(30) for e in failure(f"w{i:02d}", T0 + i * 5 * SECOND)]
    records = outages(replay_findings(tmp_path, events, specs(min_accounts=5, critical_accounts=25)))
    assert [(r.severity, r.revision, r.status) for r in records][:2] == [("high", 0, "open"), ("critical", 1, "open")]
    assert len({r.finding_id for r in records}) == 1


def test_an_outage_lists_its_own_failures_not_the_key_s_earlier_ones(tmp_path: Path) -> None:
    """Two failures of the same kind in the morning, then an outage at noon: the finding's
    evidence is the noon failures, all between its first_seen and last_seen."""
    morning = [e for i in range(2) for e in failure(f"m{i}", T0 + i * MINUTE)]
    noon = [e for i in range(25) for e in failure(f"w{i:02d}", T0 + 4 * HOUR + i * 7 * SECOND)]
    events = [*morning, *noon, clock(T0 + 6 * HOUR)]
    failed_at = {e["event_id"]: parse_ts_ms(e["occurred_at"]) for e in events if e["event_type"] == "withdrawal.failed"}
    found = outages(replay_findings(tmp_path, events, specs()))
    assert found
    for f in found:
        first, last = parse_ts_ms(f.first_seen), parse_ts_ms(f.last_seen)
        assert f.evidence and all(first <= failed_at[i] <= last for i in f.evidence), f
