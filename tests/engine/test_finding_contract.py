"""Every finding, every revision, as the contract defines its fields: ``first_seen`` and
``last_seen`` are the event times of the first and last evidence, and evidence names events
secmon read (or an earlier finding it built on).  Evidence lists are bounded, so an attack's
first event may have dropped out of its list: ``first_seen`` is at or before every listed
event, ``last_seen`` the newest one's time.  Checked over two simulated days with every
detector on, where every kind fires."""

from __future__ import annotations

import orjson
import pytest

from secmon.contract import FINDING_KINDS, Finding, parse_ts_ms
from secmon.detectors.registry import resolve
from secmon.engine.pipeline import Pipeline
from secmon.runtime.replay import replay
from secmon.sim.generate import MIN_ACCOUNTS, simulate, write

#: A finding about a source lists the source's failures, which name other accounts.
_SOURCE_EVIDENCE = {"credential_stuffing", "password_spraying", "compromise_suspected", "withdrawal_outage",
                    "mfa_secret_reuse"}  # fmt: skip


@pytest.fixture(scope="module", params=[5, 7])  # seeds where each bug fixed on 2026-11-27 shows
def revisions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Finding], dict[str, tuple[int, str | None]]]:
    out = tmp_path_factory.mktemp("sim")
    write(simulate(request.param, accounts=MIN_ACCOUNTS, days=2), out)
    events: dict[str, tuple[int, str | None]] = {}
    with (out / "events.jsonl").open("rb") as fh:
        for line in fh:
            e = orjson.loads(line)
            events[e["event_id"]] = (parse_ts_ms(e["occurred_at"]), e.get("account_id"))
    seen: list[Finding] = []
    replay([out / "events.jsonl"], Pipeline(resolve({})), on_finding=seen.append, progress=False)
    return seen, events


def test_every_kind_fires(revisions: tuple[list[Finding], dict[str, tuple[int, str | None]]]) -> None:
    findings, _ = revisions
    missing = set(FINDING_KINDS) - {f.kind for f in findings}
    assert not missing, f"the check below would not cover {sorted(missing)}"


def test_evidence_lies_between_first_seen_and_last_seen_the_latest_evidence(
    revisions: tuple[list[Finding], dict[str, tuple[int, str | None]]],
) -> None:
    findings, events = revisions
    finding_ids: set[str] = set()
    bad = []
    for f in findings:
        first, last, detected = parse_ts_ms(f.first_seen), parse_ts_ms(f.last_seen), parse_ts_ms(f.detected_at)
        problems = []
        if not f.evidence:
            problems.append("no evidence")
        if not first <= last or detected < first:
            problems.append("first_seen after last_seen or detected_at")
        times = [events[i][0] for i in f.evidence if i in events]
        if times and max(times) != last:
            problems.append(f"last_seen {last - max(times):+} ms from the latest evidence")
        for i in f.evidence:
            if i in events:
                ts, account = events[i]
                if not first <= ts <= last:
                    problems.append(f"{i} at {ts - first:+} ms from first_seen, outside the span")
                if f.account_id is not None and account not in (None, f.account_id) and f.kind not in _SOURCE_EVIDENCE:
                    problems.append(f"{i} is another account's")
            elif i not in finding_ids:  # e.g. account_takeover's risky access: a compromise finding
                problems.append(f"{i} names no input event and no earlier finding")
        if problems:
            bad.append((f.kind, f.finding_id, f.revision, problems[:3]))
        finding_ids.add(f.finding_id)
    assert not bad, f"{len(bad)} of {len(findings)} revisions: {bad[:5]}"


def test_a_finding_s_revisions_keep_its_identity_and_its_start(
    revisions: tuple[list[Finding], dict[str, tuple[int, str | None]]],
) -> None:
    """Revisions 0, 1, 2 ... of one finding: the same kind and account, the same first_seen
    (an update adds to an episode, it does not move its start), last_seen never earlier."""
    findings, _ = revisions
    previous: dict[str, Finding] = {}
    bad = []
    for f in findings:
        p = previous.get(f.finding_id)
        expected = 0 if p is None else p.revision + 1
        if f.revision != expected:
            bad.append((f.kind, f.finding_id, f"revision {f.revision} after {expected - 1}"))
        if p is not None:
            if (f.kind, f.account_id, f.first_seen) != (p.kind, p.account_id, p.first_seen):
                bad.append((f.kind, f.finding_id, f"identity or first_seen changed: {p.first_seen} -> {f.first_seen}"))
            if parse_ts_ms(f.last_seen) < parse_ts_ms(p.last_seen):
                bad.append((f.kind, f.finding_id, "last_seen went back"))
        previous[f.finding_id] = f
    assert not bad, bad[:5]


def test_an_account_s_findings_of_one_kind_do_not_overlap(
    revisions: tuple[list[Finding], dict[str, tuple[int, str | None]]],
) -> None:
    """One attack, one finding: a second finding of a kind on an account starts once the first
    has ended (as last revised), never inside it."""
    findings, _ = revisions
    latest: dict[str, Finding] = {f.finding_id: f for f in findings}
    spans: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    for f in latest.values():
        if f.account_id is not None:
            spans.setdefault((f.kind, f.account_id), []).append(
                (parse_ts_ms(f.first_seen), parse_ts_ms(f.last_seen), f.finding_id)
            )
    overlaps = [
        (kind, account, a[2], b[2])
        for (kind, account), found in spans.items()
        for a, b in zip(sorted(found), sorted(found)[1:], strict=False)
        if b[0] < a[1]
    ]
    assert not overlaps, overlaps[:5]
