"""``secmon eval``: the matching rule on hand-built labels and findings, the PaySim scoring,
the anomaly-score curves, and the report written by the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from secmon.cli import main
from secmon.contract import Finding, Subject, iso_ms
from secmon.detectors.base import make_finding
from secmon.sim import evaluate as ev

T0 = 1_790_812_800_000  # 2026-10-01T00:00:00Z
MIN, HOUR = 60_000, 3_600_000
PAYSIM = Path(__file__).resolve().parents[3] / "shared" / "data" / "paysim"


def scenario(sid: str, kind: str, start: int, end: int, *, account: str | None = None, accounts: list[str] | None = None,
             anchor: int | None = None, also: list[str] | None = None, also_until: int | None = None,
             subject: dict[str, Any] | None = None, events: list[str] | None = None,
             tx_ids: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "id": sid, "kind": kind, "variant": "", "group": None, "account_id": account,
        "accounts": accounts if accounts is not None else ([account] if account else []),
        "subject": subject or {}, "start": iso_ms(start), "end": iso_ms(end), "anchor": iso_ms(anchor or start),
        "also": also or [], "also_until": iso_ms(also_until or end), "events": events or [], "tx_ids": tx_ids or [],
        "hard_negative": False,
    }  # fmt: skip


def finding(kind: str, key: str, detected: int, *, account: str | None = None, first: int | None = None,
            subject: Subject | None = None, evidence: tuple[str, ...] = (), score: float | None = None,
            revision: int = 0) -> Finding:  # fmt: skip
    return make_finding(
        detector="test", kind=kind, severity="medium", dedup_key=key, account_id=account,
        first_seen_ms=first if first is not None else detected, last_seen_ms=detected, detected_at_ms=detected,
        evidence=evidence, summary=key, explanation={} if score is None else {"score": score}, subject=subject,
        revision=revision,
    )  # fmt: skip


@pytest.fixture
def labels() -> ev.Labels:
    doc = {
        "window": {"start": iso_ms(T0), "end": iso_ms(T0 + 24 * HOUR)},
        "scenarios": [
            scenario("bf-1", "brute_force", T0 + HOUR, T0 + HOUR + 10 * MIN, account="w1", anchor=T0 + HOUR + 5 * MIN),
            scenario("bf-2", "brute_force", T0 + 3 * HOUR, T0 + 3 * HOUR + 10 * MIN, account="w3"),
            scenario("ato-1", "account_takeover", T0 + 5 * HOUR, T0 + 6 * HOUR, account="w4",
                     also=["impossible_travel"], also_until=T0 + 8 * HOUR, tx_ids=["tx-ato"]),
            scenario("an-1", "anomalous_transaction", T0 + 2 * HOUR, T0 + 2 * HOUR, account="w5", tx_ids=["tx-1"]),
            scenario("cs-1", "credential_stuffing", T0 + 4 * HOUR, T0 + 4 * HOUR + 20 * MIN, accounts=["w6", "w7"],
                     subject={"network": "203.0.113.0/24", "ips": ["203.0.113.7", "203.0.113.9"], "asn": 64500},
                     events=["ev-cs-1", "ev-cs-2"]),
            scenario("out-1", "withdrawal_outage", T0 + 10 * HOUR, T0 + 10 * HOUR + 15 * MIN, accounts=["w8"],
                     subject={"network": "ETH", "reason": "chain_error"}),
        ],
        "hard_negatives": [{
            "id": "carrier_nat-001", "scenario": "carrier_nat", "account_ids": ["w9"],
            "subject": {"ip": "192.0.2.1", "asn": 64501}, "tx_ids": [], "start": iso_ms(T0),
            "end": iso_ms(T0 + 24 * HOUR), "must_not": ["credential_stuffing", "brute_force"],
        }],
    }
    return ev.parse_labels(doc)


def test_tp_duplicate_fp_fn_and_delay_from_the_first_revision(labels: ev.Labels) -> None:
    """Two findings on one scenario: one hit and one duplicate; a finding on another account
    and one long after the window are false positives; an undetected scenario is missed;
    the delay runs from the anchor to the *first* revision's detected_at."""
    first = ev.FirstDetections()
    early = finding("brute_force", "a", T0 + HOUR + 6 * MIN, account="w1")
    escalated = finding("brute_force", "a", T0 + 2 * HOUR, account="w1", first=T0 + HOUR, revision=1)
    for f in (early, escalated):
        first(f)
    findings = [
        escalated,
        finding("brute_force", "b", T0 + HOUR + 8 * MIN, account="w1"),
        finding("brute_force", "c", T0 + HOUR, account="w2"),
        finding("brute_force", "d", T0 + 9 * HOUR, account="w1"),
    ]
    result = ev.evaluate(findings, labels, ["brute_force"], first_detected_ms=first.first_ms)
    bf = result.kinds["brute_force"]
    assert (bf.labels, bf.findings, bf.tp, bf.fp, bf.neutral, bf.fn, bf.detected, bf.duplicates) == (2, 4, 2, 2, 0, 1, 1, 1)
    assert (bf.precision, bf.recall, bf.f1) == (0.5, 0.5, 0.5)
    assert bf.delays_ms == [MIN]
    assert result.matches["bf-1"][0] == escalated.finding_id
    assert [s.id for s in result.missed["brute_force"]] == ["bf-2"]
    assert bf.below_bar == ["recall", "precision"]


def test_also_kinds_are_neutral_only_on_their_entity_and_until_also_until(labels: ev.Labels) -> None:
    """impossible_travel on the takeover victim is neutral within also_until (+ slack), a
    false positive after it and on another account."""
    findings = [
        finding("impossible_travel", "in", T0 + 7 * HOUR, account="w4"),
        finding("impossible_travel", "late", T0 + 10 * HOUR, account="w4"),
        finding("impossible_travel", "other", T0 + 7 * HOUR, account="w1"),
    ]
    it = ev.evaluate(findings, labels, ["impossible_travel"]).kinds["impossible_travel"]
    assert (it.tp, it.neutral, it.fp, it.labels) == (0, 1, 2, 0)
    assert it.recall is None and it.precision == 0.0


def test_transaction_decides_when_both_name_one(labels: ev.Labels) -> None:
    """An anomaly finding naming another transaction of the same account is a false positive."""
    findings = [
        finding("anomalous_transaction", "x", T0 + 2 * HOUR, account="w5", subject=Subject(tx_id="tx-2")),
        finding("anomalous_transaction", "y", T0 + 2 * HOUR, account="w5", subject=Subject(tx_id="tx-1")),
    ]
    an = ev.evaluate(findings, labels, ["anomalous_transaction"]).kinds["anomalous_transaction"]
    assert (an.tp, an.fp, an.detected) == (1, 1, 1)


def test_account_less_findings_match_by_ip_network_asn_or_evidence(labels: ev.Labels) -> None:
    """A stuffing scenario is hit by its IP, a containing CIDR, its ASN or shared evidence;
    an unrelated IP is a false positive; an outage by its network name."""
    t = T0 + 4 * HOUR + 5 * MIN
    findings = [
        finding("credential_stuffing", "ip", t, subject=Subject(ip="203.0.113.7")),
        finding("credential_stuffing", "net", t + 1, subject=Subject(network="203.0.112.0/23")),
        finding("credential_stuffing", "asn", t + 2, subject=Subject(asn=64500)),
        finding("credential_stuffing", "evidence", t + 3, evidence=("ev-cs-2",)),
        finding("credential_stuffing", "victim", t + 4, account="w7"),
        finding("credential_stuffing", "elsewhere", t, subject=Subject(ip="198.51.100.1")),
        finding("withdrawal_outage", "eth", T0 + 10 * HOUR + 5 * MIN, subject=Subject(network="ETH")),
        finding("withdrawal_outage", "btc", T0 + 10 * HOUR + 5 * MIN, subject=Subject(network="BTC")),
    ]
    result = ev.evaluate(findings, labels, ["credential_stuffing", "withdrawal_outage"])
    cs, out = result.kinds["credential_stuffing"], result.kinds["withdrawal_outage"]
    assert (cs.tp, cs.fp, cs.detected, cs.duplicates) == (5, 1, 1, 4)
    assert result.matches["cs-1"][0] == findings[0].finding_id
    assert (out.tp, out.fp) == (1, 1)


def test_hard_negative_fires_on_its_ip_or_accounts(labels: ev.Labels) -> None:
    """Stuffing on the carrier NAT's IP and brute force on a NAT account fire the hard
    negative; a kind it allows does not."""
    findings = [
        finding("credential_stuffing", "nat", T0 + 12 * HOUR, subject=Subject(ip="192.0.2.1")),
        finding("brute_force", "user", T0 + 12 * HOUR, account="w9"),
        finding("impossible_travel", "allowed", T0 + 12 * HOUR, account="w9"),
    ]
    result = ev.evaluate(findings, labels, ["credential_stuffing", "brute_force", "impossible_travel"])
    hit = result.negative_hits["carrier_nat-001"]
    assert dict(hit.kinds) == {"credential_stuffing": 1, "brute_force": 1}


def test_score_curves_skip_neutral_transactions_and_need_a_score(tmp_path: Path) -> None:
    """PR/ROC samples: one per outgoing transaction, unflagged ones below every score,
    transactions only allowed to be flagged left out; None without a numeric score."""
    events = tmp_path / "events.jsonl"
    lines = [
        {"event_id": f"e-{i}", "event_type": "withdrawal.requested", "payload": {"tx_id": f"tx-{i}"}} for i in range(1, 6)
    ] + [{"event_id": "e-9", "event_type": "transfer.sent", "payload": {"tx_id": "tx-9"}},
         {"event_id": "e-d", "event_type": "deposit.initiated", "payload": {"tx_id": "dp-1"}}]  # fmt: skip
    events.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    txs = ev.transaction_index(events)
    assert txs.tx_ids == ["tx-1", "tx-2", "tx-3", "tx-4", "tx-5", "tx-9"]
    findings = [
        finding("anomalous_transaction", "1", T0, account="w", subject=Subject(tx_id="tx-1"), score=0.95),
        finding("anomalous_transaction", "2", T0, account="w", evidence=("e-2",), score=0.85),
    ]
    curves = ev.score_samples(findings, txs, {"tx-1"}, {"tx-9"})
    assert curves is not None
    assert (len(curves.y_true), curves.positives, curves.flagged) == (5, 1, 2)
    assert curves.roc_auc == 1.0 and curves.average_precision == 1.0
    assert ev.score_samples(findings, txs, {"tx-1"}, set(), score_key="missing") is None


def test_paysim_precision_and_recall_over_fraudulent_transactions(tmp_path: Path) -> None:
    """A finding counts when it names a transaction (subject or evidence)."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(
        orjson.dumps({"event_id": f"ps-{i}", "event_type": "transfer.sent", "payload": {"tx_id": f"ps-{i}"}})
        for i in range(1, 5)
    ) + b"\n")  # fmt: skip
    findings = [
        finding("anomalous_transaction", "a", T0, account="C1", subject=Subject(tx_id="ps-1")),
        finding("anomalous_transaction", "b", T0, account="C2", evidence=("ps-2",)),
        finding("account_takeover", "c", T0, account="C1"),
    ]
    doc = {"fraud_tx_ids": ["ps-1", "ps-3"], "fraud_accounts": ["C1", "C3"]}
    assert ev.is_paysim(doc)
    result = ev.evaluate_paysim(findings, doc, ev.transaction_index(events))
    assert (result.frauds, result.precision, result.recall) == (2, 0.5, 0.5)
    assert (result.kinds["anomalous_transaction"].naming_tx, result.kinds["account_takeover"].naming_tx) == (2, 0)
    assert (result.accounts_flagged, result.fraud_accounts) == (1, 2)


def test_eval_command_prints_the_table_and_writes_the_html_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`secmon simulate` then `secmon eval`: exit 0, the per-kind table on stdout, and a
    self-contained HTML report with the table, the hard negatives and inline plots."""
    assert main(["simulate", "--seed", "2", "--out", str(tmp_path), "--accounts", "300", "--days", "1",
                 "--no-progress"]) == 0  # fmt: skip
    report = tmp_path / "out.html"
    assert main(["eval", str(tmp_path), "--no-progress", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["kind", "labels", "findings", "TP"]
    for kind in ("brute_force", "withdrawal_outage", "mfa_secret_reuse"):
        assert kind in out
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<th>recall</th>" in page and "carrier_nat" in page
    assert "data:image/png;base64," in page
    assert 'src="http' not in page and "<link" not in page and "<script" not in page  # self-contained


@pytest.mark.skipif(not PAYSIM.exists(), reason="the shared PaySim sample is not on this machine")
def test_eval_command_on_a_paysim_mapped_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The PaySim mapping's labels are detected and scored over fraudulent transactions."""
    subprocess.run([sys.executable, str(PAYSIM / "to_events.py"), str(PAYSIM / "paysim_prefix_2688.csv"), str(tmp_path)],
                   check=True, capture_output=True)  # fmt: skip
    assert main(["eval", str(tmp_path), "--no-progress"]) == 0
    assert "PaySim: 16 fraudulent transactions" in capsys.readouterr().out
    assert "PaySim" in (tmp_path / "report.html").read_text(encoding="utf-8")
