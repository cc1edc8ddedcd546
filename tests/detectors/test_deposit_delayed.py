"""deposit_delayed: event-time SLA timers, resolution on a late credit."""

from __future__ import annotations

from pathlib import Path

from secmon.contract import iso_ms
from secmon.detectors.deposit_delayed import DepositDelayed, DepositDelayedConfig
from secmon.detectors.registry import DetectorSpec
from tests.helpers.events import MINUTE, SECOND, T0, ev, replay_findings


def spec(**options: object) -> DetectorSpec:
    return DetectorSpec(DepositDelayed, DepositDelayedConfig(**options))  # type: ignore[arg-type]


def deposit(account: str, tx: str, ts: int, network: str = "TRON", usd: str = "250.00") -> dict:
    return ev("deposit.initiated", account, ts, {"tx_id": tx, "network": network, "amount": usd, "amount_usd": usd})


def credit(account: str, tx: str, ts: int) -> dict:
    return ev("deposit.credited", account, ts, {"tx_id": tx})


def clock(ts: int) -> dict:
    """Another account's activity: moves stream time (and the watermark) forward."""
    return ev("login.succeeded", "w-clock", ts)


def test_uncredited_deposit_opens_at_due_time_and_resolves_on_credit(tmp_path: Path) -> None:
    """No credit by the SLA: a finding detected at the due time; the late credit resolves it."""
    events = [deposit("w1", "dp-1", T0), clock(T0 + 40 * MINUTE), credit("w1", "dp-1", T0 + 50 * MINUTE)]
    opened, resolved = replay_findings(tmp_path, events, [spec()])
    assert opened.kind == "deposit_delayed" and opened.status == "open" and opened.revision == 0
    assert opened.detected_at == iso_ms(T0 + 30 * MINUTE)
    assert opened.subject.tx_id == "dp-1" and opened.subject.network == "TRON"
    assert opened.explanation["sla_ms"] == 30 * MINUTE
    assert resolved.finding_id == opened.finding_id
    assert resolved.status == "resolved" and resolved.revision == 1
    assert resolved.explanation["delay_ms"] == 50 * MINUTE


def test_deposit_credited_at_29_minutes_is_fine(tmp_path: Path) -> None:
    """Hard negative: credited within the SLA, even with traffic well past the due time."""
    events = [deposit("w1", "dp-1", T0), credit("w1", "dp-1", T0 + 29 * MINUTE), clock(T0 + 3 * 60 * MINUTE)]
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_credit_after_sla_but_before_the_timer_fired_gives_delay_and_resolution(tmp_path: Path) -> None:
    """Watermark lag: the credit at 30:02 arrives before the 30:00 timer fired; it was still late."""
    events = [deposit("w1", "dp-1", T0), credit("w1", "dp-1", T0 + 30 * MINUTE + 2 * SECOND)]
    records = replay_findings(tmp_path, events, [spec()])
    assert [(r.status, r.revision) for r in records] == [("open", 0), ("resolved", 1)]
    assert records[0].detected_at == iso_ms(T0 + 30 * MINUTE)
    assert records[0].finding_id == records[1].finding_id


def test_sla_per_network(tmp_path: Path) -> None:
    """A network with a longer SLA is not late when the default one would be."""
    events = [
        deposit("w1", "dp-btc", T0, network="BTC"),
        deposit("w2", "dp-tron", T0, network="TRON"),
        credit("w1", "dp-btc", T0 + 45 * MINUTE),
        credit("w2", "dp-tron", T0 + 45 * MINUTE),
    ]
    records = replay_findings(tmp_path, events, [spec(sla_ms_by_network={"BTC": 60 * MINUTE})])
    assert {r.subject.tx_id for r in records} == {"dp-tron"}


def test_deposit_never_credited_fires_at_end_of_replay_once(tmp_path: Path) -> None:
    """The timer fires once; a duplicate initiation does not arm a second finding."""
    events = [deposit("w1", "dp-1", T0), deposit("w1", "dp-1", T0 + MINUTE), clock(T0 + 2 * 60 * MINUTE)]
    records = replay_findings(tmp_path, events, [spec()])
    assert [(r.subject.tx_id, r.status) for r in records] == [("dp-1", "open")]
    assert records[0].severity == "medium"


def test_config_rejects_a_non_positive_sla() -> None:
    """A zero SLA is a config error at start-up."""
    import pytest

    from secmon.config import ConfigError
    from secmon.detectors.registry import resolve

    with pytest.raises(ConfigError, match="SLA"):
        resolve({"deposit_delayed": {"sla_ms_by_network": {"BTC": 0}}})
