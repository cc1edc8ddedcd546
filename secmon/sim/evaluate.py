"""``secmon eval``: score the detectors' findings against labels (simulator or PaySim).

The findings come from the same pipeline as ``secmon replay`` (compacted: the latest
revision of each ``finding_id``; a resolved finding still counts as a detection).

Matching rule (simulator labels, :mod:`secmon.sim.labels`).  A finding *matches* a
scenario when all three hold:

1. **kind**: the finding's kind equals the scenario's kind;
2. **entity**:
   * if both name transactions (finding ``subject.tx_id``, scenario ``tx_ids``), the
     finding's transaction is one of the scenario's — nothing else is needed or enough;
   * else a finding about an account matches when its ``account_id`` is one of the
     scenario's ``accounts`` (for aggregate scenarios — stuffing, spraying, outage, secret
     reuse — every population account involved);
   * else (an account-less finding) it matches when its evidence shares an event with the
     scenario, or its ``subject.ip`` is one of the scenario's IPs, or its
     ``subject.network`` is a CIDR containing one of them (a /24 or wider aggregation), or
     names the scenario's network (an outage's ``ETH``), or — for account-less scenarios —
     its ``subject.asn`` is the scenario's ASN;
3. **time**: the finding's span ``[first_seen, max(last_seen, detected_at)]`` overlaps the
   scenario's ``[start - slack, end + slack]`` (slack: 60 min by default).

Counting, per kind: a finding that matches at least one scenario is a *true positive*
finding; among the findings matching one scenario, the earliest ``detected_at`` (then the
smallest ``finding_id``) detects it and the others are *duplicates* (still correct, shown
separately).  A finding matching no scenario of its kind but one whose ``also`` lists its
kind (time window extended to ``also_until``) is *neutral*: neither hit nor false alarm.
Every other finding is a *false positive*.  Precision = TP findings / (TP + FP) over unique
``finding_id`` s; recall = detected scenarios / labelled scenarios; F1 their harmonic mean.
Detection delay = the detecting finding's ``detected_at`` minus the scenario's ``anchor``
(the event time its pattern is complete, per ``labels.json`` ``assumptions.anchors``),
where ``detected_at`` is that of the finding's *first* revision (an escalated finding keeps
its id); it is negative when a detector fires on less evidence than the anchor assumes.

Hard negatives: a finding whose kind is in a hard negative's ``must_not`` and that concerns
it (one of its accounts or transactions, or its IP) within its time window *fires* it.

PaySim (``labels.json`` with ``fraud_tx_ids``, from ``shared/data/paysim/to_events.py``):
a finding counts when it names a transaction (``subject.tx_id``, or an evidence event of a
transaction); precision = findings naming a fraudulent transaction / findings naming any;
recall = fraudulent transactions named / all fraudulent transactions.

The anomaly score of ``anomalous_transaction`` findings (``explanation["score"]`` by
default) is scored against the labelled anomalous transactions as PR and ROC curves: every
outgoing transaction of the file is a sample, those without a finding sit below every
emitted score (so the curves end where the detector's threshold cuts them), and
transactions of scenarios that only *allow* an anomaly finding (a takeover's exit) are
left out.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from secmon.contract import FINDING_KINDS, Finding, parse_ts_ms

DEFAULT_SLACK_MS = 60 * 60_000
RECALL_BAR = 0.95
PRECISION_BAR = 0.9
TX_EVENT_TYPES = (b'"withdrawal.requested"', b'"transfer.sent"')

IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


# ============================================================================ labels
@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    kind: str
    variant: str
    account_id: str | None
    accounts: frozenset[str]
    ips: frozenset[IpAddr]
    network: str | None
    asn: int | None
    start_ms: int
    end_ms: int
    anchor_ms: int
    also: frozenset[str]
    also_until_ms: int
    events: frozenset[str]
    tx_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class HardNegative:
    id: str
    scenario: str
    account_ids: frozenset[str]
    ips: frozenset[IpAddr]
    tx_ids: frozenset[str]
    start_ms: int
    end_ms: int
    must_not: frozenset[str]


@dataclass(frozen=True, slots=True)
class Labels:
    scenarios: tuple[Scenario, ...]
    negatives: tuple[HardNegative, ...]
    window: tuple[int, int] | None
    seed: int | None


def _ips(subject: dict[str, Any]) -> frozenset[IpAddr]:
    texts = list(subject.get("ips") or []) + ([subject["ip"]] if subject.get("ip") else [])
    return frozenset(ipaddress.ip_address(t) for t in texts)


def parse_labels(doc: dict[str, Any]) -> Labels:
    """The simulator's ``labels.json`` document (see :mod:`secmon.sim.labels`)."""
    scenarios = tuple(
        Scenario(
            id=s["id"],
            kind=s["kind"],
            variant=s.get("variant", ""),
            account_id=s.get("account_id"),
            accounts=frozenset(s.get("accounts") or ([s["account_id"]] if s.get("account_id") else [])),
            ips=_ips(s.get("subject") or {}),
            network=(s.get("subject") or {}).get("network"),
            asn=(s.get("subject") or {}).get("asn"),
            start_ms=parse_ts_ms(s["start"]),
            end_ms=parse_ts_ms(s["end"]),
            anchor_ms=parse_ts_ms(s.get("anchor") or s["start"]),
            also=frozenset(s.get("also") or ()),
            also_until_ms=parse_ts_ms(s.get("also_until") or s["end"]),
            events=frozenset(s.get("events") or ()),
            tx_ids=frozenset(s.get("tx_ids") or ()),
        )
        for s in doc.get("scenarios", [])
    )
    negatives = tuple(
        HardNegative(
            id=n["id"],
            scenario=n["scenario"],
            account_ids=frozenset(n.get("account_ids") or ()),
            ips=_ips(n.get("subject") or {}),
            tx_ids=frozenset(n.get("tx_ids") or ()),
            start_ms=parse_ts_ms(n["start"]),
            end_ms=parse_ts_ms(n["end"]),
            must_not=frozenset(n.get("must_not") or ()),
        )
        for n in doc.get("hard_negatives", [])
    )
    window = doc.get("window")
    span = (parse_ts_ms(window["start"]), parse_ts_ms(window["end"])) if window else None
    return Labels(scenarios, negatives, span, doc.get("seed"))


def load_labels_document(path: str | Path) -> dict[str, Any]:
    return orjson.loads(Path(path).read_bytes())  # type: ignore[no-any-return]


def is_paysim(doc: dict[str, Any]) -> bool:
    return "fraud_tx_ids" in doc and "scenarios" not in doc


# ============================================================================ matching
@dataclass(frozen=True, slots=True)
class _F:
    """A finding with its times parsed once."""

    f: Finding
    first_ms: int
    last_ms: int
    detected_ms: int
    ip: IpAddr | None
    net: ipaddress.IPv4Network | ipaddress.IPv6Network | None


class FirstDetections:
    """Collects, per ``finding_id``, the ``detected_at`` of its first revision.

    Replay keeps only the latest revision of a finding (escalated, grown, resolved), whose
    ``detected_at`` is the time of that update; the delay that matters is the first alert.
    Pass an instance as ``replay(..., on_finding=...)``."""

    def __init__(self) -> None:
        self.first_ms: dict[str, int] = {}

    def __call__(self, finding: Finding) -> None:
        ms = parse_ts_ms(finding.detected_at)
        if ms < self.first_ms.get(finding.finding_id, ms + 1):
            self.first_ms[finding.finding_id] = ms


def _prepare(f: Finding, first_detected: dict[str, int] | None = None) -> _F:
    ip = net = None
    if f.subject.ip:
        try:
            ip = ipaddress.ip_address(f.subject.ip)
        except ValueError:
            ip = None
    if f.subject.network and "/" in f.subject.network:
        try:
            net = ipaddress.ip_network(f.subject.network, strict=False)
        except ValueError:
            net = None
    latest = parse_ts_ms(f.detected_at)
    detected = min(latest, first_detected.get(f.finding_id, latest)) if first_detected else latest
    last = max(parse_ts_ms(f.last_seen), latest)
    return _F(f, parse_ts_ms(f.first_seen), last, detected, ip, net)


def _overlaps(x: _F, start: int, end: int, slack: int) -> bool:
    return x.first_ms <= end + slack and x.last_ms >= start - slack


def entity_matches(x: _F, s: Scenario | HardNegative) -> bool:
    """Rule 2 of the module docstring (for a scenario or a hard negative)."""
    f = x.f
    if f.subject.tx_id and s.tx_ids:
        return f.subject.tx_id in s.tx_ids
    accounts = s.accounts if isinstance(s, Scenario) else s.account_ids
    if f.account_id is not None:
        return f.account_id in accounts
    if isinstance(s, Scenario) and s.events and not s.events.isdisjoint(f.evidence):
        return True
    if x.ip is not None and x.ip in s.ips:
        return True
    if x.net is not None and any(ip.version == x.net.version and ip in x.net for ip in s.ips):
        return True
    if isinstance(s, Scenario):
        if f.subject.network and s.network and f.subject.network == s.network:
            return True
        if s.account_id is None and f.subject.asn is not None and f.subject.asn == s.asn:
            return True
    return False


@dataclass
class KindResult:
    kind: str
    has_detector: bool
    labels: int = 0
    findings: int = 0
    tp: int = 0
    fp: int = 0
    neutral: int = 0
    detected: int = 0
    duplicates: int = 0
    delays_ms: list[int] = field(default_factory=list)

    @property
    def fn(self) -> int:
        return self.labels - self.detected

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.labels if self.labels else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    def delay_s(self, q: float) -> float | None:
        return quantile([d / 1000 for d in self.delays_ms], q)

    @property
    def below_bar(self) -> list[str]:
        """What falls short of the bar (recall ≥ 0.95, precision ≥ 0.9); empty when it holds."""
        out = []
        if self.labels and (self.recall or 0.0) < RECALL_BAR:
            out.append("recall")
        if self.precision is not None and self.precision < PRECISION_BAR:
            out.append("precision")
        return out


@dataclass
class NegativeHit:
    negative: HardNegative
    kinds: Counter[str] = field(default_factory=Counter)
    finding_ids: list[str] = field(default_factory=list)


@dataclass
class Evaluation:
    kinds: dict[str, KindResult]
    negatives: list[HardNegative]
    negative_hits: dict[str, NegativeHit]
    #: scenario id → finding ids that match it (earliest first)
    matches: dict[str, list[str]]
    false_positives: dict[str, list[Finding]]
    missed: dict[str, list[Scenario]]
    findings: list[Finding]
    slack_ms: int

    def below_bar(self) -> list[KindResult]:
        return [k for k in self.kinds.values() if k.has_detector and k.below_bar]


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile (numpy's default), None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def evaluate(
    findings: Iterable[Finding],
    labels: Labels,
    detector_kinds: Iterable[str],
    slack_ms: int = DEFAULT_SLACK_MS,
    first_detected_ms: dict[str, int] | None = None,
) -> Evaluation:
    """Match findings to labelled scenarios and hard negatives (rules in the module
    docstring).  ``first_detected_ms`` (from :class:`FirstDetections`) dates each finding by
    its first revision; without it, by the ``detected_at`` it carries."""
    enabled = set(detector_kinds)
    prepared = sorted(
        (_prepare(f, first_detected_ms) for f in findings), key=lambda x: (x.detected_ms, x.f.finding_id)
    )
    extra = ({x.f.kind for x in prepared} | {s.kind for s in labels.scenarios}) - set(FINDING_KINDS)
    kinds_seen = [*FINDING_KINDS, *sorted(extra)]
    results = {k: KindResult(k, k in enabled) for k in kinds_seen}
    for s in labels.scenarios:
        results[s.kind].labels += 1

    by_kind: dict[str, list[Scenario]] = defaultdict(list)
    by_kind_account: dict[tuple[str, str], list[Scenario]] = defaultdict(list)
    also_kind: dict[str, list[Scenario]] = defaultdict(list)
    also_account: dict[tuple[str, str], list[Scenario]] = defaultdict(list)
    for s in labels.scenarios:
        by_kind[s.kind].append(s)
        for a in s.accounts:
            by_kind_account[(s.kind, a)].append(s)
        for k in s.also:
            also_kind[k].append(s)
            for a in s.accounts:
                also_account[(k, a)].append(s)
    neg_by_account: dict[str, list[HardNegative]] = defaultdict(list)
    neg_other: list[HardNegative] = []
    for n in labels.negatives:
        for a in n.account_ids:
            neg_by_account[a].append(n)
        if n.ips or n.tx_ids:
            neg_other.append(n)

    def candidates(x: _F, index_kind: dict[str, list[Scenario]], index_acct: dict[tuple[str, str], list[Scenario]]
                   ) -> list[Scenario]:  # fmt: skip
        f = x.f
        if f.account_id is not None and not f.subject.tx_id:
            return index_acct.get((f.kind, f.account_id), [])
        return index_kind.get(f.kind, [])

    matches: dict[str, list[_F]] = defaultdict(list)
    false_positives: dict[str, list[Finding]] = defaultdict(list)
    neg_hits: dict[str, NegativeHit] = {}
    for x in prepared:
        f = x.f
        res = results[f.kind]
        res.findings += 1
        hit = [
            s for s in candidates(x, by_kind, by_kind_account)
            if _overlaps(x, s.start_ms, s.end_ms, slack_ms) and entity_matches(x, s)
        ]  # fmt: skip
        if hit:
            res.tp += 1
            for s in hit:
                matches[s.id].append(x)
        elif any(
            _overlaps(x, s.start_ms, max(s.end_ms, s.also_until_ms), slack_ms) and entity_matches(x, s)
            for s in candidates(x, also_kind, also_account)
        ):
            res.neutral += 1
        else:
            res.fp += 1
            false_positives[f.kind].append(f)
        pool = neg_by_account.get(f.account_id, []) if f.account_id is not None else []
        for n in (*pool, *neg_other):
            if f.kind in n.must_not and _overlaps(x, n.start_ms, n.end_ms, slack_ms) and entity_matches(x, n):
                nh = neg_hits.setdefault(n.id, NegativeHit(n))
                if f.finding_id not in nh.finding_ids:
                    nh.kinds[f.kind] += 1
                    nh.finding_ids.append(f.finding_id)

    firsts: dict[str, set[str]] = defaultdict(set)
    missed: dict[str, list[Scenario]] = defaultdict(list)
    for s in labels.scenarios:
        found = matches.get(s.id)
        if not found:
            missed[s.kind].append(s)
            continue
        res = results[s.kind]
        res.detected += 1
        first = found[0]  # ``prepared`` is in (detected_at, finding_id) order
        firsts[s.kind].add(first.f.finding_id)
        res.delays_ms.append(first.detected_ms - s.anchor_ms)
    for kind, res in results.items():
        res.duplicates = res.tp - len(firsts.get(kind, ()))
    return Evaluation(
        kinds=results,
        negatives=list(labels.negatives),
        negative_hits=neg_hits,
        matches={sid: [x.f.finding_id for x in xs] for sid, xs in matches.items()},
        false_positives=dict(false_positives),
        missed=dict(missed),
        findings=[x.f for x in prepared],
        slack_ms=slack_ms,
    )


# ============================================================================ transactions and scores
@dataclass
class Transactions:
    """Outgoing transactions of an events file: every ``tx_id`` and which event made it."""

    tx_ids: list[str]
    by_event: dict[str, str]


def transaction_index(path: str | Path) -> Transactions:
    """Scan ``events.jsonl`` for ``withdrawal.requested`` and ``transfer.sent`` (cheap:
    only those lines are parsed)."""
    tx_ids: list[str] = []
    by_event: dict[str, str] = {}
    with Path(path).open("rb") as fh:
        for line in fh:
            if TX_EVENT_TYPES[0] not in line and TX_EVENT_TYPES[1] not in line:
                continue
            try:
                ev = orjson.loads(line)
                tx = ev["payload"]["tx_id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if ev.get("event_type") in ("withdrawal.requested", "transfer.sent"):
                tx_ids.append(tx)
                by_event[ev["event_id"]] = tx
    return Transactions(tx_ids, by_event)


def finding_tx(f: Finding, txs: Transactions) -> str | None:
    """The transaction a finding is about: ``subject.tx_id``, else its first transaction evidence."""
    if f.subject.tx_id:
        return f.subject.tx_id
    return next((txs.by_event[e] for e in f.evidence if e in txs.by_event), None)


@dataclass
class ScoreCurves:
    """Samples for PR/ROC: one per outgoing transaction (``score`` None = no finding)."""

    y_true: list[int]
    y_score: list[float]
    positives: int
    flagged: int
    score_key: str
    average_precision: float | None = None
    roc_auc: float | None = None


def score_samples(
    findings: Iterable[Finding],
    txs: Transactions,
    positives: set[str],
    neutral: set[str],
    score_key: str = "score",
    kind: str = "anomalous_transaction",
) -> ScoreCurves | None:
    """Per transaction, the highest score of a ``kind`` finding naming it; None when no
    finding of that kind carries a numeric ``explanation[score_key]``."""
    best: dict[str, float] = {}
    for f in findings:
        if f.kind != kind:
            continue
        value = f.explanation.get(score_key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        tx = finding_tx(f, txs)
        if tx is not None and value > best.get(tx, -math.inf):
            best[tx] = float(value)
    if not best:
        return None
    floor = min(best.values()) - 1.0
    y_true, y_score = [], []
    for tx in dict.fromkeys(txs.tx_ids):
        if tx in neutral and tx not in positives:
            continue
        y_true.append(1 if tx in positives else 0)
        y_score.append(best.get(tx, floor))
    curves = ScoreCurves(y_true, y_score, sum(y_true), len(best), score_key)
    if 0 < curves.positives < len(y_true):
        from sklearn.metrics import average_precision_score, roc_auc_score

        curves.average_precision = float(average_precision_score(y_true, y_score))
        curves.roc_auc = float(roc_auc_score(y_true, y_score))
    return curves


def simulator_tx_sets(labels: Labels, kind: str = "anomalous_transaction") -> tuple[set[str], set[str]]:
    """(positives, neutral) transaction ids for the score curves of ``kind``."""
    positives = {t for s in labels.scenarios if s.kind == kind for t in s.tx_ids}
    neutral = {t for s in labels.scenarios if kind in s.also for t in s.tx_ids}
    return positives, neutral


# ============================================================================ PaySim
@dataclass
class PaysimKind:
    kind: str
    findings: int = 0
    naming_tx: int = 0
    tp: int = 0
    fraud_found: set[str] = field(default_factory=set)

    @property
    def precision(self) -> float | None:
        return self.tp / self.naming_tx if self.naming_tx else None


@dataclass
class PaysimEvaluation:
    frauds: int
    kinds: dict[str, PaysimKind]
    fraud_found: set[str]
    fraud_accounts: int
    accounts_flagged: int

    @property
    def recall(self) -> float | None:
        return len(self.fraud_found) / self.frauds if self.frauds else None

    @property
    def precision(self) -> float | None:
        naming = sum(k.naming_tx for k in self.kinds.values())
        return sum(k.tp for k in self.kinds.values()) / naming if naming else None


def evaluate_paysim(findings: Iterable[Finding], doc: dict[str, Any], txs: Transactions) -> PaysimEvaluation:
    """Precision/recall over fraudulent transactions (rule in the module docstring)."""
    fraud = set(doc.get("fraud_tx_ids") or ())
    fraud_accounts = set(doc.get("fraud_accounts") or ())
    kinds: dict[str, PaysimKind] = {}
    found: set[str] = set()
    flagged_accounts: set[str] = set()
    for f in findings:
        k = kinds.setdefault(f.kind, PaysimKind(f.kind))
        k.findings += 1
        if f.account_id in fraud_accounts:
            flagged_accounts.add(f.account_id)  # type: ignore[arg-type]
        tx = finding_tx(f, txs)
        if tx is None:
            continue
        k.naming_tx += 1
        if tx in fraud:
            k.tp += 1
            k.fraud_found.add(tx)
            found.add(tx)
    return PaysimEvaluation(len(fraud), kinds, found, len(fraud_accounts), len(flagged_accounts))
