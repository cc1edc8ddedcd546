"""The finding gate: record finding revisions once; report which ones are new.

A finding re-emitted while the gap after a restart is replayed has the same
``(finding_id, revision)`` and is dropped here, so no effect (case, message, feed record)
happens twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from secmon.contract import Finding, encode_finding, parse_ts_ms
from secmon.store.db import insert_ignore
from secmon.store.schema import finding as finding_table


def record_findings(conn: Connection, findings: Sequence[Finding], now_ms: int) -> list[Finding]:
    """Insert the findings' revisions; return those not seen before, in input order."""
    if not findings:
        return []
    unique: dict[tuple[str, int], Finding] = {}
    for f in findings:
        unique.setdefault((f.finding_id, f.revision), f)
    rows = [
        {
            "finding_id": f.finding_id,
            "revision": f.revision,
            "kind": f.kind,
            "severity": f.severity,
            "status": f.status,
            "account_id": f.account_id,
            "detected_ms": parse_ts_ms(f.detected_at),
            "record": encode_finding(f).decode(),
            "created_ms": now_ms,
        }
        for f in unique.values()
    ]
    inserted = {
        (r.finding_id, r.revision)
        for r in insert_ignore(conn, finding_table, rows, returning=(finding_table.c.finding_id, finding_table.c.revision))
    }
    return [f for key, f in unique.items() if key in inserted]
