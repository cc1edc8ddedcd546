"""The finding gate: a revision is recorded once; replays are recognised."""

from __future__ import annotations

from secmon.detectors.base import make_finding
from secmon.store.db import open_database
from secmon.store.findings import record_findings


def _f(key: str, revision: int = 0):  # type: ignore[no-untyped-def]
    return make_finding(detector="d", kind="brute_force", severity="high", dedup_key=key, account_id="a",
                        first_seen_ms=1, last_seen_ms=2, detected_at_ms=3, evidence=["e"], summary="s",
                        explanation={}, revision=revision)


def test_gate_passes_new_revisions_only(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:
        first = record_findings(conn, [_f("x"), _f("y"), _f("x")], now_ms=1)
    assert [f.finding_id for f in first] == [_f("x").finding_id, _f("y").finding_id]
    with engine.begin() as conn:
        again = record_findings(conn, [_f("x"), _f("x", 1), _f("z")], now_ms=2)
    assert [(f.finding_id, f.revision) for f in again] == [(_f("x").finding_id, 1), (_f("z").finding_id, 0)]
