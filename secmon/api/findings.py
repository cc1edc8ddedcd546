"""Reading the ``finding`` table: the feed (latest revision of each finding), one finding with
its revision history, the live-stream cursor and the dashboard's counts.

Every revision is a row; "latest" is the row with no higher revision of the same id (a
``NOT EXISTS`` over the primary key, so filters on kind/time use their own indexes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, exists, func, select, tuple_
from sqlalchemy.sql import ColumnElement

from secmon.alerts.tables import case_finding
from secmon.contract import SEVERITIES
from secmon.store.schema import finding

_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class FindingRow:
    finding_id: str
    revision: int
    kind: str
    severity: str
    status: str
    account_id: str | None
    detected_ms: int
    created_ms: int
    record: dict[str, Any]


@dataclass(frozen=True)
class FindingDetail:
    latest: FindingRow
    revisions: list[FindingRow]
    case_ids: list[int]


@dataclass(frozen=True)
class Cursor:
    """A position in the stream: (created_ms, finding_id, revision), strictly increasing."""

    created_ms: int
    finding_id: str
    revision: int

    def encode(self) -> str:
        return f"{self.created_ms}:{self.finding_id}:{self.revision}"

    @staticmethod
    def decode(text: str) -> Cursor | None:
        parts = text.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit() or not 0 < len(parts[1]) <= 32:
            return None
        return Cursor(int(parts[0]), parts[1], int(parts[2]))


def _row(r: Any) -> FindingRow:
    return FindingRow(r.finding_id, r.revision, r.kind, r.severity, r.status, r.account_id, r.detected_ms,
                      r.created_ms, orjson.loads(r.record))  # fmt: skip


def severities_at_least(min_severity: str) -> list[str]:
    return [s for s in SEVERITIES if _RANK[s] >= _RANK[min_severity]]


class FindingQuery:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _filters(*, kind: Sequence[str] | None = None, severity: Sequence[str] | None = None,
                 account_id: str | None = None, status: str | None = None, since_ms: int | None = None,
                 until_ms: int | None = None) -> list[ColumnElement[bool]]:  # fmt: skip
        c = finding.c
        where: list[ColumnElement[bool]] = []
        if kind:
            where.append(c.kind.in_(list(kind)))
        if severity is not None:  # an empty list matches nothing (e.g. severity=low with min_severity=high)
            where.append(c.severity.in_(list(severity)))
        if account_id is not None:
            where.append(c.account_id == account_id)
        if status is not None:
            where.append(c.status == status)
        if since_ms is not None:
            where.append(c.detected_ms >= since_ms)
        if until_ms is not None:
            where.append(c.detected_ms < until_ms)
        return where

    def latest(self, *, limit: int = 50, offset: int = 0, **filters: Any) -> list[FindingRow]:
        """Latest revisions matching the filters, newest detection first."""
        newer = finding.alias("newer")
        latest = ~exists().where(newer.c.finding_id == finding.c.finding_id, newer.c.revision > finding.c.revision)
        stmt = (select(finding).where(latest, *self._filters(**filters))
                .order_by(finding.c.detected_ms.desc(), finding.c.finding_id).limit(limit).offset(offset))  # fmt: skip
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(stmt)]

    def get(self, finding_id: str) -> FindingDetail | None:
        with self.engine.connect() as conn:
            rows = conn.execute(select(finding).where(finding.c.finding_id == finding_id)
                                .order_by(finding.c.revision)).all()  # fmt: skip
            if not rows:
                return None
            cases = [int(r.case_id) for r in conn.execute(
                select(case_finding.c.case_id).where(case_finding.c.finding_id == finding_id)
                .order_by(case_finding.c.case_id))]  # fmt: skip
        revisions = [_row(r) for r in rows]
        return FindingDetail(revisions[-1], revisions, cases)

    def after(self, cursor: Cursor | None, *, since_created_ms: int | None = None, limit: int = 200,
              **filters: Any) -> list[FindingRow]:  # fmt: skip
        """Revisions recorded after ``cursor`` (or from ``since_created_ms``), in stream order."""
        c = finding.c
        where = self._filters(**filters)
        if cursor is not None:
            where.append(tuple_(c.created_ms, c.finding_id, c.revision)
                         > tuple_(cursor.created_ms, cursor.finding_id, cursor.revision))  # fmt: skip
        elif since_created_ms is not None:
            where.append(c.created_ms >= since_created_ms)
        stmt = select(finding).where(*where).order_by(c.created_ms, c.finding_id, c.revision).limit(limit)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(stmt)]

    def head(self) -> Cursor | None:
        """The newest stream position (a new live stream starts here)."""
        c = finding.c
        with self.engine.connect() as conn:
            r = conn.execute(select(c.created_ms, c.finding_id, c.revision)
                             .order_by(c.created_ms.desc(), c.finding_id.desc(), c.revision.desc()).limit(1)).first()  # fmt: skip
        return Cursor(r.created_ms, r.finding_id, r.revision) if r is not None else None

    def counts_by_day(self, since_ms: int, until_ms: int, day_ms: int = 86_400_000) -> dict[int, dict[str, int]]:
        """First revisions detected in ``[since, until)``: day start (ms) → kind → count."""
        c = finding.c
        day = (c.detected_ms - (c.detected_ms % day_ms)).label("day")
        stmt = (select(day, c.kind, func.count()).where(c.revision == 0, c.detected_ms >= since_ms,
                                                        c.detected_ms < until_ms)
                .group_by(day, c.kind))  # fmt: skip
        out: dict[int, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for d, kind, n in conn.execute(stmt):
                out.setdefault(int(d), {})[kind] = int(n)
        return out

    def kinds(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(select(finding.c.kind).distinct()))

