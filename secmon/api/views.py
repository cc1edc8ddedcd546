"""Domain objects → response dicts, shaped by who asks (support sees masked views).

Both the JSON routes and the console pages use these, so the page and the API never show
different things to the same person.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, exists, select

from secmon.alerts.cases import TRANSITIONS, AuditEntry, CaseDetail, CaseSummary
from secmon.alerts.policy import CATEGORIES
from secmon.alerts.tables import support_case
from secmon.api.auth import Principal
from secmon.api.findings import FindingQuery, FindingRow
from secmon.api.masking import key_numbers, mask_account, mask_obj, mask_text
from secmon.store.schema import finding


def case_out(c: CaseSummary, who: Principal, now_ms: int) -> dict[str, Any]:
    d = asdict(c)
    d["due_in_ms"] = c.due_ms - now_ms
    if not who.sees_raw:
        d["account_id"] = mask_account(c.account_id)
        d["title"] = mask_text(c.title, [c.account_id or ""])
    return d


def _latest_records(engine: Engine, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    newer = finding.alias("newer")
    stmt = select(finding.c.finding_id, finding.c.record).where(
        finding.c.finding_id.in_(ids),
        ~exists().where(newer.c.finding_id == finding.c.finding_id, newer.c.revision > finding.c.revision),
    )
    with engine.connect() as conn:
        return {r.finding_id: orjson.loads(r.record) for r in conn.execute(stmt)}


def case_detail_out(detail: CaseDetail, who: Principal, now_ms: int, engine: Engine,
                    max_evidence: int = 100) -> dict[str, Any]:  # fmt: skip
    """A case with its evidence in plain words (summary + key numbers) and its timeline."""
    case = detail.case
    accounts = [a for a in {case.account_id, *(f.account_id for f in detail.findings)} if a]
    linked = detail.findings[-max_evidence:]
    records = _latest_records(engine, [f.finding_id for f in linked])
    evidence = []
    for f in linked:
        rec = records.get(f.finding_id, {})
        summary = f.summary
        evidence.append({
            "finding_id": f.finding_id, "kind": f.kind, "severity": f.severity, "status": f.status,
            "revision": f.revision, "summary": summary if who.sees_raw else mask_text(summary, accounts),
            "linked_ms": f.linked_ms, "resolved_ms": f.resolved_ms, "detected_at": rec.get("detected_at"),
            "key_numbers": key_numbers(rec.get("explanation") or {}),
        })  # fmt: skip
    timeline = [asdict(e) for e in detail.timeline]
    if not who.sees_raw:
        timeline = [{**e, "detail": mask_obj(e["detail"], accounts)} for e in timeline]
    return {
        "case": case_out(case, who, now_ms),
        "evidence": evidence,
        "timeline": timeline,
        "children": detail.children,
        "transitions": sorted(TRANSITIONS.get(case.status, ())),
    }


def finding_out(r: FindingRow) -> dict[str, Any]:
    rec = r.record
    return {
        "finding_id": r.finding_id, "revision": r.revision, "kind": r.kind, "severity": r.severity,
        "status": r.status, "account_id": r.account_id, "detector": str(rec.get("detector", "")),
        "summary": str(rec.get("summary", "")), "first_seen": str(rec.get("first_seen", "")),
        "last_seen": str(rec.get("last_seen", "")), "detected_at": str(rec.get("detected_at", "")),
        "created_ms": r.created_ms, "subject": dict(rec.get("subject") or {}),
        "explanation": dict(rec.get("explanation") or {}), "evidence": [str(e) for e in rec.get("evidence") or []],
    }  # fmt: skip


def revision_out(r: FindingRow) -> dict[str, Any]:
    rec = r.record
    return {"revision": r.revision, "severity": r.severity, "status": r.status,
            "detected_at": str(rec.get("detected_at", "")), "created_ms": r.created_ms,
            "summary": str(rec.get("summary", "")), "evidence": [str(e) for e in rec.get("evidence") or []]}  # fmt: skip


def audit_out(e: AuditEntry) -> dict[str, Any]:
    return asdict(e)


def stats_out(engine: Engine, findings: FindingQuery, now_ms: int, days: int = 14) -> dict[str, Any]:
    """Findings per day and kind (first revisions, by detection time) and active cases by SLA state."""
    day_ms = 86_400_000
    start = (now_ms // day_ms - days + 1) * day_ms
    counts = findings.counts_by_day(start, now_ms + day_ms)
    by_day = [{"day": datetime.fromtimestamp((start + i * day_ms) / 1000, UTC).strftime("%Y-%m-%d"),
               "counts": dict(sorted(counts.get(start + i * day_ms, {}).items()))} for i in range(days)]  # fmt: skip
    c = support_case.c
    per: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        rows = conn.execute(select(c.category, c.due_ms, c.paused_ms, c.breached_ms)
                            .where(c.status.in_(("new", "open", "pending_user")))).all()  # fmt: skip
    for r in rows:
        slot = per.setdefault(r.category, {"on_time": 0, "breached": 0, "paused": 0})
        if r.breached_ms is not None or (r.paused_ms is None and r.due_ms < now_ms):
            slot["breached"] += 1
        elif r.paused_ms is not None:
            slot["paused"] += 1
        else:
            slot["on_time"] += 1
    cases = [{"category": k, **per.get(k, {"on_time": 0, "breached": 0, "paused": 0})} for k in CATEGORIES]
    return {"findings_by_day": by_day, "active_cases": cases}
