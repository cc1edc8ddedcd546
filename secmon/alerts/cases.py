"""Support cases: one per problem, with a priority, an SLA clock, a timeline and an audit trail.

Two halves over the same tables:

* :class:`CaseStore` — what findings do to cases, inside the batch transaction (it is given
  the connection): open a case, or join the active one of the same (account, category);
  reopen one resolved moments ago; resolve it when the detector resolves its last open
  finding; group the accounts hit by a platform incident under one incident case.
* :class:`CaseService` — the console's API (list/filter/sort by SLA, get with timeline,
  assign, comment, change status along validated transitions, priority), the periodic
  SLA sweep and the report.  Every write, automatic or not, adds an ``audit_log`` row
  naming its actor.

Statuses: ``new → open → pending_user → resolved → closed`` (see :data:`TRANSITIONS`);
``new``, ``open`` and ``pending_user`` are *active*.  The SLA clock is paused while a case is
``pending_user`` (waiting for the user is not support's delay).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, or_, select, update

from secmon.alerts.policy import CATEGORIES, CaseAction, kind_title
from secmon.alerts.redact import scrub
from secmon.alerts.settings import CaseSettings
from secmon.alerts.sla import PRIORITIES, SlaPolicy, more_urgent, raise_priority
from secmon.alerts.tables import audit_log, case_event, case_finding, support_case
from secmon.clock import wall_ms
from secmon.contract import Finding
from secmon.metrics import Metrics
from secmon.store.db import insert_ignore, upsert
from secmon.store.fastexec import run

ACTIVE = ("new", "open", "pending_user")
#: A ``support_case`` row: SQLAlchemy's ``Row`` or a named tuple from :mod:`secmon.store.fastexec`,
#: read by column name (``case.id``, ``case.priority``).
CaseRow = Any
STATUSES = ("new", "open", "pending_user", "resolved", "closed")
#: Allowed status changes (``resolved``/``closed`` → ``open`` is a reopen).
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"open", "pending_user", "resolved", "closed"}),
    "open": frozenset({"pending_user", "resolved", "closed"}),
    "pending_user": frozenset({"open", "resolved", "closed"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset({"open"}),
}
SYSTEM_ACTOR = "secmon"
SORTS = ("due", "-due", "opened", "-opened", "priority", "updated", "-updated")
_MAX_TEXT = 10_000


class CaseError(Exception):
    """Base of the case API's errors (the console maps them to 4xx answers)."""


class CaseNotFound(CaseError):
    pass


class InvalidTransition(CaseError):
    pass


class InvalidArgument(CaseError):
    pass


# Statements of the per-finding path, built once: building one costs more than running it.
_CASES_OF_FINDING = (
    select(support_case)
    .join(case_finding, case_finding.c.case_id == support_case.c.id)
    # OR rather than IN: an IN list is expanded at execution, which fastexec leaves to SQLAlchemy.
    .where(case_finding.c.finding_id == bindparam("finding_id"), or_(*(support_case.c.status == s for s in ACTIVE)))
)
_CASE_BY_OPEN_KEY = select(support_case).where(support_case.c.open_key == bindparam("open_key"))
_CASE_BY_ID = select(support_case).where(support_case.c.id == bindparam("case_id"))
_CASE_BY_ID_LOCKED = _CASE_BY_ID.with_for_update()
_RECENTLY_RESOLVED = {
    who: select(support_case)
    .where(clause, support_case.c.category == bindparam("category"), support_case.c.status == "resolved",
           support_case.c.resolved_ms >= bindparam("since"))
    .order_by(support_case.c.resolved_ms.desc())
    .limit(1)
    for who, clause in (
        ("account", support_case.c.account_id == bindparam("account")),
        ("incident", and_(support_case.c.account_id.is_(None), support_case.c.incident_key == bindparam("ikey"))),
    )
}  # fmt: skip
_LINKED_MS = select(case_finding.c.linked_ms).where(
    case_finding.c.case_id == bindparam("case_id"), case_finding.c.finding_id == bindparam("finding_id")
)
#: SET columns come from the parameters (all but ``case_id_``).
_UPDATE_CASE = update(support_case).where(support_case.c.id == bindparam("case_id_"))
_INSERT_CASE_EVENT = insert(case_event)
_INSERT_AUDIT = insert(audit_log)


def _json(detail: dict[str, Any]) -> str:
    return orjson.dumps(detail).decode()


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class CaseChange:
    """What a finding did to a case, for the notifier (which tells users)."""

    case_id: int
    category: str
    account_id: str | None
    kind: str
    opened: bool = False
    resolved: bool = False
    joined_incident: bool = False
    #: Accounts to tell about an incident's resolution.
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseSummary:
    id: int
    category: str
    category_title: str
    priority: str
    status: str
    account_id: str | None
    incident_key: str | None
    parent_id: int | None
    title: str
    first_kind: str
    assignee: str | None
    opened_ms: int
    updated_ms: int
    due_ms: int
    sla_paused: bool
    breached: bool
    breached_ms: int | None
    resolved_ms: int | None
    closed_ms: int | None
    reopened: int
    findings: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LinkedFinding:
    finding_id: str
    kind: str
    severity: str
    status: str
    revision: int
    account_id: str | None
    summary: str
    linked_ms: int
    resolved_ms: int | None


@dataclass(frozen=True)
class TimelineEntry:
    id: int
    at_ms: int
    actor: str
    type: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class CaseDetail:
    case: CaseSummary
    findings: list[LinkedFinding]
    timeline: list[TimelineEntry]
    children: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at_ms: int
    actor: str
    action: str
    object_type: str
    object_id: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class SweepResult:
    breached: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class CategoryStats:
    category: str
    title: str
    opened: int
    resolved: int
    active: int
    breached: int
    median_resolve_ms: int | None

    @property
    def breach_rate(self) -> float:
        return self.breached / self.opened if self.opened else 0.0


@dataclass(frozen=True)
class CaseReport:
    since_ms: int
    until_ms: int
    total: CategoryStats
    categories: list[CategoryStats]
    #: Kind that opened the case → cases (what users run into).
    kinds: dict[str, int]


def _summary(r: CaseRow, now_ms: int | None = None) -> CaseSummary:
    breached = r.breached_ms is not None
    if not breached and now_ms is not None and r.status in ACTIVE and r.paused_ms is None:
        breached = r.due_ms < now_ms
    return CaseSummary(
        id=r.id, category=r.category, category_title=CATEGORIES.get(r.category, r.category), priority=r.priority,
        status=r.status, account_id=r.account_id, incident_key=r.incident_key, parent_id=r.parent_id, title=r.title,
        first_kind=r.first_kind, assignee=r.assignee, opened_ms=r.opened_ms, updated_ms=r.updated_ms,
        due_ms=r.due_ms, sla_paused=r.paused_ms is not None, breached=breached, breached_ms=r.breached_ms,
        resolved_ms=r.resolved_ms, closed_ms=r.closed_ms, reopened=r.reopened, findings=r.findings,
    )  # fmt: skip


def incident_key_of(finding: Finding) -> str | None:
    """The platform incident a finding belongs to (``explanation.outage_key``), if any."""
    key = finding.explanation.get("outage_key")
    return key[:256] if isinstance(key, str) and key else None


def source_key_of(finding: Finding) -> str:
    """A key for an account-less finding that is not an incident (an IP, an ASN …)."""
    s = finding.subject
    parts = [f"{k}={v}" for k, v in (("ip", s.ip), ("asn", s.asn), ("network", s.network), ("reason", s.reason),
                                     ("address", s.address)) if v is not None]  # fmt: skip
    return f"{finding.kind}:{','.join(parts) or finding.finding_id}"[:256]


def open_key_for(category: str, account_id: str | None, incident_key: str | None) -> str:
    """The ``open_key`` of the active case of an account (or, account-less, an incident)."""
    return f"{category}|acct:{account_id}" if account_id is not None else f"{category}|inc:{incident_key}"


# ------------------------------------------------------------------------------ writes in a batch
class CaseStore:
    """Case writes inside a caller's transaction (the batch, or a console request)."""

    def __init__(self, sla: SlaPolicy, settings: CaseSettings, metrics: Metrics | None = None) -> None:
        self.sla = sla
        self.settings = settings
        self.metrics = metrics
        self._local = threading.local()  # this thread's batched timeline rows, if batching

    @contextlib.contextmanager
    def batched_timeline(self, conn: Connection) -> Iterator[None]:
        """Within it, timeline and audit rows are kept and written at the end in two
        statements, not two per entry: a batch of findings writes one to three entries per
        finding, and on PostgreSQL each statement is a round trip.  Nothing in a batch reads
        them back (the console does, later).  Per thread: console requests write directly."""
        self._local.rows = ([], [])
        try:
            yield
            events, audits = self._local.rows
            if events:
                conn.execute(_INSERT_CASE_EVENT, events)
                conn.execute(_INSERT_AUDIT, audits)
        finally:
            self._local.rows = None

    # -- findings ----------------------------------------------------------------------
    def on_finding(self, conn: Connection, f: Finding, action: CaseAction | None, now_ms: int) -> list[CaseChange]:
        """Apply one new finding revision; returns what changed for the notifier."""
        if f.status == "resolved":
            return self._finding_resolved(conn, f, now_ms)
        linked = run(conn, _CASES_OF_FINDING, {"finding_id": f.finding_id}).all()
        if linked:
            for case in linked:
                self.link(conn, case, f, action, now_ms, event="finding_updated")
            return []
        if action is None:
            return []
        return self._open_or_join(conn, f, action, now_ms)

    def _open_or_join(self, conn: Connection, f: Finding, action: CaseAction, now_ms: int) -> list[CaseChange]:
        category = action.category
        ikey = incident_key_of(f)
        account = f.account_id if category != "platform_incident" else None
        if account is None:
            ikey = ikey or source_key_of(f)
        elif ikey is not None:
            incident = self._active(conn, open_key_for("platform_incident", None, ikey))
            if incident is not None:  # an outage is open: this account is one of its victims
                self.link(conn, incident, f, None, now_ms, event="member_added")
                return [CaseChange(incident.id, incident.category, f.account_id, f.kind, joined_incident=True)]
        key = open_key_for(category, account, ikey if account is None else None)
        case = self._active(conn, key)
        if case is not None:
            self.link(conn, case, f, action, now_ms, event="finding_linked")
            return []
        case = self._recently_resolved(conn, category, account, ikey if account is None else None, now_ms)
        if case is not None:
            priority = more_urgent(case.priority, action.priority)
            conn.execute(
                update(support_case)
                .where(support_case.c.id == case.id)
                .values(status="open", open_key=key, resolved_ms=None, closed_ms=None, priority=priority,
                        due_ms=self.sla.due_ms(priority, now_ms), breach_due_ms=None, paused_ms=None,
                        reopened=case.reopened + 1, updated_ms=now_ms)
            )  # fmt: skip
            self._record(conn, case.id, SYSTEM_ACTOR, "reopened", {"by_finding": f.finding_id, "kind": f.kind}, now_ms)
            case = self._get(conn, case.id)
            self.link(conn, case, f, None, now_ms, event="finding_linked")
            self._count_opened(category)
            return [CaseChange(case.id, category, account, f.kind, opened=True)]
        row = {
            "category": category, "priority": action.priority, "status": "new", "account_id": account,
            "incident_key": ikey if account is None else incident_key_of(f), "open_key": key, "parent_id": None,
            "title": _title(f), "first_kind": f.kind, "assignee": None, "opened_ms": now_ms, "updated_ms": now_ms,
            "due_ms": self.sla.due_ms(action.priority, now_ms), "reopened": 0, "findings": 0,
        }  # fmt: skip
        inserted = insert_ignore(conn, support_case, [row], returning=(support_case.c.id,))
        if not inserted:  # another worker opened it a moment ago
            case = self._active(conn, key)
            if case is None:
                raise RuntimeError(f"case {key} neither inserted nor found")
            self.link(conn, case, f, action, now_ms, event="finding_linked")
            return []
        case_id = inserted[0].id
        self._record(conn, case_id, SYSTEM_ACTOR, "opened",
                     {"category": category, "priority": action.priority, "kind": f.kind, "finding_id": f.finding_id,
                      "due_ms": row["due_ms"]}, now_ms)  # fmt: skip
        case = self._get(conn, case_id)
        self.link(conn, case, f, None, now_ms, event="finding_linked")
        self._count_opened(category)
        if category == "platform_incident":
            self._adopt_victims(conn, case, now_ms)
        return [CaseChange(case_id, category, account, f.kind, opened=True)]

    def link(
        self,
        conn: Connection,
        case: CaseRow,
        f: Finding,
        action: CaseAction | None,
        now_ms: int,
        *,
        event: str,
        actor: str = SYSTEM_ACTOR,
    ) -> None:
        """Attach (or refresh) a finding on a case; a more urgent rule raises the priority."""
        existing = run(conn, _LINKED_MS, {"case_id": case.id, "finding_id": f.finding_id}).first()
        summary = scrub(f.summary)[:2000]
        upsert(
            conn,
            case_finding,
            [{
                "case_id": case.id, "finding_id": f.finding_id, "kind": f.kind, "severity": f.severity,
                "status": f.status, "revision": f.revision, "account_id": f.account_id,
                "incident_key": incident_key_of(f), "summary": summary,
                "linked_ms": existing.linked_ms if existing is not None else now_ms, "resolved_ms": None,
            }],
            keys=("case_id", "finding_id"),
        )  # fmt: skip
        values: dict[str, Any] = {"updated_ms": now_ms}
        if existing is None:
            values["findings"] = case.findings + 1
        if action is not None and more_urgent(action.priority, case.priority) != case.priority:
            values["priority"] = action.priority
            values["due_ms"] = min(case.due_ms, self.sla.due_ms(action.priority, now_ms))
            self._record(
                conn,
                case.id,
                actor,
                "priority",
                {"from": case.priority, "to": action.priority, "reason": f"{f.kind} {f.severity}"},
                now_ms,
            )
        run(conn, _UPDATE_CASE, {"case_id_": case.id, **values})
        self._record(conn, case.id, actor, event,
                     {"finding_id": f.finding_id, "kind": f.kind, "severity": f.severity, "revision": f.revision,
                      "account_id": f.account_id, "summary": summary}, now_ms)  # fmt: skip

    def _finding_resolved(self, conn: Connection, f: Finding, now_ms: int) -> list[CaseChange]:
        case_ids = [r.case_id for r in conn.execute(
            select(case_finding.c.case_id).where(case_finding.c.finding_id == f.finding_id))]  # fmt: skip
        if not case_ids:
            return []
        conn.execute(
            update(case_finding)
            .where(case_finding.c.finding_id == f.finding_id)
            .values(status="resolved", revision=f.revision, severity=f.severity, summary=scrub(f.summary)[:2000],
                    resolved_ms=now_ms)
        )  # fmt: skip
        changes = []
        for case_id in case_ids:
            case = self._get(conn, case_id)
            self._record(
                conn,
                case_id,
                SYSTEM_ACTOR,
                "finding_resolved",
                {"finding_id": f.finding_id, "kind": f.kind, "summary": scrub(f.summary)[:2000]},
                now_ms,
            )
            # An incident ends with its own (account-less) findings; its victims' failures never "resolve".
            if case.status not in ACTIVE or self._open_findings(
                conn, case_id, own_only=case.category == "platform_incident"
            ):
                continue
            self._resolve(conn, case, now_ms, SYSTEM_ACTOR, {"reason": "the detector resolved every linked finding"})
            members: tuple[str, ...] = ()
            if case.category == "platform_incident":
                members = self._resolve_incident_victims(conn, case, now_ms)
            changes.append(CaseChange(case_id, case.category, case.account_id, f.kind, resolved=True, members=members))
        return changes

    def _resolve_incident_victims(self, conn: Connection, incident: CaseRow, now_ms: int) -> tuple[str, ...]:
        """An incident is over: its victims' own cases about it resolve too; returns the accounts."""
        members = {r.account_id for r in conn.execute(
            select(case_finding.c.account_id).where(case_finding.c.case_id == incident.id,
                                                    case_finding.c.account_id.is_not(None)))}  # fmt: skip
        conn.execute(update(case_finding).where(case_finding.c.case_id == incident.id,
                                                case_finding.c.status != "resolved")
                     .values(status="resolved", resolved_ms=now_ms))  # fmt: skip
        children = conn.execute(select(support_case).where(support_case.c.parent_id == incident.id)).all()
        for child in children:
            if child.account_id is not None:
                members.add(child.account_id)
            conn.execute(
                update(case_finding)
                .where(case_finding.c.case_id == child.id, case_finding.c.incident_key == incident.incident_key,
                       case_finding.c.status != "resolved")
                .values(status="resolved", resolved_ms=now_ms)
            )  # fmt: skip
            if child.status in ACTIVE and not self._open_findings(conn, child.id):
                self._resolve(
                    conn,
                    child,
                    now_ms,
                    SYSTEM_ACTOR,
                    {"reason": "the platform incident was resolved", "incident_id": incident.id},
                )
        return tuple(sorted(members))

    def _adopt_victims(self, conn: Connection, incident: CaseRow, now_ms: int) -> None:
        """Account cases opened before the outage was recognised become part of it."""
        rows = conn.execute(
            select(support_case.c.id, support_case.c.account_id)
            .join(case_finding, case_finding.c.case_id == support_case.c.id)
            .where(case_finding.c.incident_key == incident.incident_key, support_case.c.status.in_(ACTIVE),
                   support_case.c.category != "platform_incident", support_case.c.parent_id.is_(None))
            .distinct()
        ).all()  # fmt: skip
        for child_id, account in rows:
            conn.execute(update(support_case).where(support_case.c.id == child_id)
                         .values(parent_id=incident.id, updated_ms=now_ms))  # fmt: skip
            self._record(conn, child_id, SYSTEM_ACTOR, "joined_incident", {"incident_id": incident.id}, now_ms)
            self._record(
                conn, incident.id, SYSTEM_ACTOR, "member_added", {"case_id": child_id, "account_id": account}, now_ms
            )

    # -- status ------------------------------------------------------------------------
    def _resolve(self, conn: Connection, case: CaseRow, now_ms: int, actor: str, detail: dict[str, Any]) -> None:
        conn.execute(
            update(support_case)
            .where(support_case.c.id == case.id)
            .values(status="resolved", resolved_ms=now_ms, open_key=None, paused_ms=None, updated_ms=now_ms)
        )
        self._record(conn, case.id, actor, "status", {"from": case.status, "to": "resolved", **detail}, now_ms)
        if self.metrics is not None:
            self.metrics.cases_resolved.labels(case.category, "detector" if actor == SYSTEM_ACTOR else "agent").inc()

    def change_status(
        self, conn: Connection, case: CaseRow, status: str, actor: str, now_ms: int, note: str | None = None
    ) -> None:
        """Move a case along :data:`TRANSITIONS` (reopen included); raises :class:`InvalidTransition`."""
        if status not in STATUSES:
            raise InvalidArgument(f"unknown status {status!r}; one of {STATUSES}")
        if status not in TRANSITIONS[case.status]:
            raise InvalidTransition(f"case {case.id}: {case.status} → {status} is not allowed")
        detail: dict[str, Any] = {"from": case.status, "to": status}
        if note:
            detail["note"] = _text(note)
        if status == "resolved":
            self._resolve(conn, case, now_ms, actor, detail | {"reason": "agent"})
            return
        values: dict[str, Any] = {"status": status, "updated_ms": now_ms}
        if case.status == "pending_user" and case.paused_ms is not None:
            values["due_ms"] = case.due_ms + max(0, now_ms - case.paused_ms)  # the clock resumes
            values["paused_ms"] = None
        if status == "pending_user":
            values["paused_ms"] = now_ms
        elif status == "closed":
            values |= {"closed_ms": now_ms, "open_key": None, "paused_ms": None,
                       "resolved_ms": case.resolved_ms if case.resolved_ms is not None else now_ms}  # fmt: skip
            if case.status in ACTIVE and self.metrics is not None:
                self.metrics.cases_resolved.labels(case.category, "agent").inc()
        elif case.status in ("resolved", "closed"):  # reopen
            key = open_key_for(case.category, case.account_id, case.incident_key if case.account_id is None else None)
            other = self._active(conn, key)
            if other is not None:
                raise InvalidTransition(f"case {case.id}: case {other.id} is already active for this problem")
            values |= {"open_key": key, "resolved_ms": None, "closed_ms": None, "reopened": case.reopened + 1,
                       "due_ms": self.sla.due_ms(case.priority, now_ms), "breach_due_ms": None}  # fmt: skip
            self._count_opened(case.category)
        run(conn, _UPDATE_CASE, {"case_id_": case.id, **values})
        self._record(conn, case.id, actor, "status", detail, now_ms)

    def set_priority(
        self, conn: Connection, case: CaseRow, priority: str, actor: str, now_ms: int, reason: str | None = None
    ) -> None:
        if priority not in PRIORITIES:
            raise InvalidArgument(f"unknown priority {priority!r}; one of {PRIORITIES}")
        if priority == case.priority:
            return
        values: dict[str, Any] = {"priority": priority, "updated_ms": now_ms}
        if case.status in ACTIVE:  # more urgent: due no later; less urgent: as if opened with it
            if more_urgent(priority, case.priority) == priority:
                values["due_ms"] = min(case.due_ms, self.sla.due_ms(priority, now_ms))
            else:
                values["due_ms"] = max(case.due_ms, self.sla.due_ms(priority, case.opened_ms))
        run(conn, _UPDATE_CASE, {"case_id_": case.id, **values})
        detail: dict[str, Any] = {"from": case.priority, "to": priority}
        if reason:
            detail["reason"] = _text(reason)
        self._record(conn, case.id, actor, "priority", detail, now_ms)

    # -- helpers -----------------------------------------------------------------------
    def _active(self, conn: Connection, open_key: str) -> CaseRow | None:
        return run(conn, _CASE_BY_OPEN_KEY, {"open_key": open_key}).first()

    def _recently_resolved(
        self, conn: Connection, category: str, account: str | None, ikey: str | None, now_ms: int
    ) -> CaseRow | None:
        since = now_ms - self.settings.reopen_window_ms
        if account is not None:
            params = {"account": account, "category": category, "since": since}
            return run(conn, _RECENTLY_RESOLVED["account"], params).first()
        params = {"ikey": ikey, "category": category, "since": since}
        return run(conn, _RECENTLY_RESOLVED["incident"], params).first()

    def _get(self, conn: Connection, case_id: int, *, lock: bool = False) -> CaseRow:
        row = run(conn, _CASE_BY_ID_LOCKED if lock else _CASE_BY_ID, {"case_id": case_id}).first()
        if row is None:
            raise CaseNotFound(f"no case {case_id}")
        return row

    def _open_findings(self, conn: Connection, case_id: int, *, own_only: bool = False) -> int:
        stmt = (select(func.count()).select_from(case_finding)
                .where(case_finding.c.case_id == case_id, case_finding.c.status != "resolved"))  # fmt: skip
        if own_only:
            stmt = stmt.where(case_finding.c.account_id.is_(None))
        return int(conn.execute(stmt).scalar_one())

    def _record(
        self, conn: Connection, case_id: int, actor: str, type_: str, detail: dict[str, Any], now_ms: int
    ) -> None:
        """A timeline entry and its audit row (every case write goes through here)."""
        text = _json(detail)
        event = {"case_id": case_id, "at_ms": now_ms, "actor": actor, "type": type_, "detail": text}
        trail = _audit_row(actor, f"case.{type_}", "case", str(case_id), text, now_ms)
        batched = getattr(self._local, "rows", None)
        if batched is not None:
            batched[0].append(event)
            batched[1].append(trail)
            return
        conn.execute(_INSERT_CASE_EVENT, event)
        conn.execute(_INSERT_AUDIT, trail)

    def _count_opened(self, category: str) -> None:
        if self.metrics is not None:
            self.metrics.cases_opened.labels(category).inc()


def audit(
    conn: Connection, actor: str, action: str, object_type: str, object_id: str, detail: str, now_ms: int
) -> None:
    """One audit-log row: who did what to which object, when."""
    conn.execute(_INSERT_AUDIT, _audit_row(actor, action, object_type, object_id, detail, now_ms))


def _audit_row(actor: str, action: str, object_type: str, object_id: str, detail: str, now_ms: int) -> dict[str, Any]:
    return {"at_ms": now_ms, "actor": actor[:128], "action": action, "object_type": object_type,
            "object_id": object_id, "detail": detail}  # fmt: skip


def _title(f: Finding) -> str:
    if f.kind == "withdrawal_outage":
        s = f.subject
        return f"Withdrawal outage: {s.reason or 'failures'} on {s.network or 'unknown network'}"
    return kind_title(f.kind)


def _text(value: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument("text must be a string")
    value = value.strip()
    if not value:
        raise InvalidArgument("text must not be empty")
    return scrub(value[:_MAX_TEXT])


def _actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 128:
        raise InvalidArgument("actor must be a non-empty string of at most 128 characters")
    return actor.strip()


# ------------------------------------------------------------------------------ the console API
class CaseService:
    """The case API for the console and the HTTP API (one transaction per call).

    ``actor`` names who acts (the console user); it is written to the timeline and the
    audit log with every change."""

    def __init__(self, engine: Engine, store: CaseStore, *, clock: Callable[[], int] = wall_ms) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock

    # -- reading -----------------------------------------------------------------------
    def list_cases(
        self,
        *,
        status: str | Sequence[str] | None = None,
        category: str | None = None,
        priority: str | None = None,
        account_id: str | None = None,
        assignee: str | None = None,
        breached: bool | None = None,
        sort: str = "due",
        limit: int = 50,
        offset: int = 0,
    ) -> list[CaseSummary]:
        """Cases matching every given filter; ``status="active"`` means new, open or pending_user.

        ``sort``: ``due`` (most urgent SLA first), ``priority`` (then due), ``opened``,
        ``updated``; a leading ``-`` reverses."""
        if sort not in SORTS:
            raise InvalidArgument(f"sort must be one of {SORTS}")
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidArgument("limit must be 1..1000 and offset >= 0")
        now = self.clock()
        c = support_case.c
        stmt = select(support_case)
        if status is not None:
            wanted = ACTIVE if status == "active" else ((status,) if isinstance(status, str) else tuple(status))
            bad = set(wanted) - set(STATUSES)
            if bad:
                raise InvalidArgument(f"unknown status {sorted(bad)}")
            stmt = stmt.where(c.status.in_(wanted))
        if category is not None:
            if category not in CATEGORIES:
                raise InvalidArgument(f"unknown category {category!r}")
            stmt = stmt.where(c.category == category)
        if priority is not None:
            stmt = stmt.where(c.priority == priority)
        if account_id is not None:
            stmt = stmt.where(c.account_id == account_id)
        if assignee is not None:
            stmt = stmt.where(c.assignee == assignee)
        if breached is not None:
            overdue = or_(c.breached_ms.is_not(None),
                          and_(c.status.in_(ACTIVE), c.paused_ms.is_(None), c.due_ms < now))  # fmt: skip
            stmt = stmt.where(overdue if breached else ~overdue)
        order = {
            "due": (c.due_ms.asc(), c.id.asc()), "-due": (c.due_ms.desc(), c.id.desc()),
            "opened": (c.opened_ms.asc(), c.id.asc()), "-opened": (c.opened_ms.desc(), c.id.desc()),
            "updated": (c.updated_ms.asc(), c.id.asc()), "-updated": (c.updated_ms.desc(), c.id.desc()),
            "priority": (c.priority.asc(), c.due_ms.asc(), c.id.asc()),
        }[sort]  # fmt: skip
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(*order).limit(limit).offset(offset)).all()
        return [_summary(r, now) for r in rows]

    def get_case(self, case_id: int) -> CaseDetail:
        """A case with its linked findings, its timeline (oldest first) and its child cases."""
        with self.engine.connect() as conn:
            row = self.store._get(conn, case_id)
            links = conn.execute(
                select(case_finding).where(case_finding.c.case_id == case_id).order_by(case_finding.c.linked_ms)
            ).all()
            events = conn.execute(
                select(case_event).where(case_event.c.case_id == case_id).order_by(case_event.c.id)
            ).all()
            children = [
                r.id
                for r in conn.execute(
                    select(support_case.c.id).where(support_case.c.parent_id == case_id).order_by(support_case.c.id)
                )
            ]
        return CaseDetail(
            case=_summary(row, self.clock()),
            findings=[LinkedFinding(l.finding_id, l.kind, l.severity, l.status, l.revision, l.account_id, l.summary,
                                    l.linked_ms, l.resolved_ms) for l in links],  # noqa: E741
            timeline=[TimelineEntry(e.id, e.at_ms, e.actor, e.type, orjson.loads(e.detail)) for e in events],
            children=children,
        )  # fmt: skip

    def audit_trail(self, object_id: str | int | None = None, *, object_type: str = "case",
                    limit: int = 100) -> list[AuditEntry]:  # fmt: skip
        """The newest audit entries (of one object when ``object_id`` is given)."""
        stmt = select(audit_log).where(audit_log.c.object_type == object_type)
        if object_id is not None:
            stmt = stmt.where(audit_log.c.object_id == str(object_id))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(audit_log.c.id.desc()).limit(limit)).all()
        return [AuditEntry(r.id, r.at_ms, r.actor, r.action, r.object_type, r.object_id, orjson.loads(r.detail))
                for r in rows]  # fmt: skip

    # -- writing -----------------------------------------------------------------------
    def assign(self, case_id: int, assignee: str | None, *, actor: str) -> CaseSummary:
        """Give the case to someone (None: unassign).  A ``new`` case becomes ``open``."""
        actor = _actor(actor)
        if assignee is not None:
            assignee = _actor(assignee)
        now = self.clock()
        with self.engine.begin() as conn:
            case = self.store._get(conn, case_id, lock=True)
            conn.execute(update(support_case).where(support_case.c.id == case_id)
                         .values(assignee=assignee, updated_ms=now))  # fmt: skip
            self.store._record(conn, case_id, actor, "assigned", {"from": case.assignee, "to": assignee}, now)
            if case.status == "new" and assignee is not None:
                self.store.change_status(conn, self.store._get(conn, case_id), "open", actor, now)
            return _summary(self.store._get(conn, case_id), now)

    def comment(self, case_id: int, text: str, *, actor: str) -> TimelineEntry:
        """Add a note to the timeline."""
        actor = _actor(actor)
        body = _text(text)
        now = self.clock()
        with self.engine.begin() as conn:
            self.store._get(conn, case_id, lock=True)
            conn.execute(update(support_case).where(support_case.c.id == case_id).values(updated_ms=now))
            self.store._record(conn, case_id, actor, "comment", {"text": body}, now)
            last = conn.execute(select(case_event).where(case_event.c.case_id == case_id)
                                .order_by(case_event.c.id.desc()).limit(1)).one()  # fmt: skip
        return TimelineEntry(last.id, last.at_ms, last.actor, last.type, orjson.loads(last.detail))

    def change_status(self, case_id: int, status: str, *, actor: str, note: str | None = None) -> CaseSummary:
        """Move the case to ``status`` if :data:`TRANSITIONS` allows it."""
        actor = _actor(actor)
        now = self.clock()
        with self.engine.begin() as conn:
            case = self.store._get(conn, case_id, lock=True)
            self.store.change_status(conn, case, status, actor, now, note)
            return _summary(self.store._get(conn, case_id), now)

    def set_priority(self, case_id: int, priority: str, *, actor: str, reason: str | None = None) -> CaseSummary:
        """Change the priority (and with it the SLA due time)."""
        actor = _actor(actor)
        now = self.clock()
        with self.engine.begin() as conn:
            case = self.store._get(conn, case_id, lock=True)
            self.store.set_priority(conn, case, priority, actor, now, reason)
            return _summary(self.store._get(conn, case_id), now)

    # -- periodic ----------------------------------------------------------------------
    def sweep(self, now_ms: int | None = None) -> SweepResult:
        """Record SLA breaches (escalating one step if configured) and close old resolved cases.

        Each breach is claimed by one conditional UPDATE, so concurrent sweeps by several
        workers record it once."""
        now = self.clock() if now_ms is None else now_ms
        c = support_case.c
        store = self.store
        result = SweepResult()
        with self.engine.begin() as conn:
            due = conn.execute(
                update(support_case)
                .where(c.status.in_(ACTIVE), c.paused_ms.is_(None), c.due_ms <= now,
                       or_(c.breach_due_ms.is_(None), c.breach_due_ms != c.due_ms))
                .values(breach_due_ms=c.due_ms, breached_ms=func.coalesce(c.breached_ms, now), updated_ms=now)
                .returning(c.id, c.category, c.priority, c.due_ms)
            ).all()  # fmt: skip
            for case_id, category, priority, due_ms in sorted(due):
                result.breached.append(case_id)
                store._record(
                    conn, case_id, SYSTEM_ACTOR, "sla_breached", {"priority": priority, "due_ms": due_ms}, now
                )
                if store.metrics is not None:
                    store.metrics.sla_breaches.labels(category, priority).inc()
                if store.settings.escalate_on_breach and priority != "P1":
                    up = raise_priority(priority)
                    conn.execute(update(support_case).where(c.id == case_id)
                                 .values(priority=up, due_ms=store.sla.due_ms(up, now)))  # fmt: skip
                    store._record(
                        conn,
                        case_id,
                        SYSTEM_ACTOR,
                        "priority",
                        {"from": priority, "to": up, "reason": "SLA breached"},
                        now,
                    )
                    result.escalated.append(case_id)
            closed = conn.execute(
                update(support_case)
                .where(c.status == "resolved", c.resolved_ms <= now - store.settings.auto_close_after_ms)
                .values(status="closed", closed_ms=now, updated_ms=now)
                .returning(c.id)
            ).all()
            for (case_id,) in sorted(closed):
                result.closed.append(case_id)
                store._record(
                    conn,
                    case_id,
                    SYSTEM_ACTOR,
                    "status",
                    {"from": "resolved", "to": "closed", "reason": "auto-close"},
                    now,
                )
        return result

    def report(self, since_ms: int, until_ms: int | None = None) -> CaseReport:
        """Cases opened in ``[since, until)``: per category opened, resolved, still active,
        SLA breached and the median time to resolve; and which kinds opened them."""
        now = self.clock()
        until = now if until_ms is None else until_ms
        c = support_case.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.category, c.status, c.first_kind, c.opened_ms, c.due_ms, c.paused_ms, c.breached_ms,
                       c.resolved_ms)
                .where(c.opened_ms >= since_ms, c.opened_ms < until)
            ).all()  # fmt: skip
        per: dict[str, list[Any]] = {k: [] for k in CATEGORIES}
        kinds: dict[str, int] = {}
        for r in rows:
            per.setdefault(r.category, []).append(r)
            kinds[r.first_kind] = kinds.get(r.first_kind, 0) + 1

        def stats(category: str, title: str, group: list[Any]) -> CategoryStats:
            resolved = [r for r in group if r.resolved_ms is not None]
            breached = sum(
                1 for r in group
                if r.breached_ms is not None
                or (r.resolved_ms is not None and r.resolved_ms > r.due_ms)
                or (r.status in ACTIVE and r.paused_ms is None and r.due_ms < now)
            )  # fmt: skip
            durations = [r.resolved_ms - r.opened_ms for r in resolved]
            return CategoryStats(
                category=category, title=title, opened=len(group), resolved=len(resolved),
                active=sum(1 for r in group if r.status in ACTIVE), breached=breached,
                median_resolve_ms=int(statistics.median(durations)) if durations else None,
            )  # fmt: skip

        categories = [stats(k, CATEGORIES.get(k, k), v) for k, v in per.items()]
        total = stats("all", "All categories", list(rows))
        return CaseReport(since_ms, until, total, categories, dict(sorted(kinds.items(), key=lambda kv: -kv[1])))
