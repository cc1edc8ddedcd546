"""Request and response bodies of the JSON API (they are what ``/openapi.json`` publishes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["new", "open", "pending_user", "resolved", "closed"]
Priority = Literal["P1", "P2", "P3", "P4"]
Category = Literal["login_lockout", "deposit_withdrawal", "account_security", "platform_incident"]
Severity = Literal["info", "low", "medium", "high", "critical"]
Role = Literal["support_agent", "security_analyst", "admin"]
#: Text without NUL characters (PostgreSQL cannot store them).
NO_NUL = r"^[^\x00]*$"
#: Ids stay within a signed 53-bit range (JSON-safe, fits BIGINT).
MAX_ID = 2**53


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Out):
    error: str
    detail: str


class CaseOut(_Out):
    id: int
    category: str
    category_title: str
    priority: str
    status: str
    #: Masked (``ac…56``) for support agents.
    account_id: str | None
    incident_key: str | None
    parent_id: int | None
    title: str
    first_kind: str
    assignee: str | None
    opened_ms: int
    updated_ms: int
    due_ms: int
    #: Milliseconds until the SLA is due (negative: overdue) at the time of the answer.
    due_in_ms: int
    sla_paused: bool
    breached: bool
    breached_ms: int | None
    resolved_ms: int | None
    closed_ms: int | None
    reopened: int
    findings: int


class EvidenceOut(_Out):
    finding_id: str
    kind: str
    severity: str
    status: str
    revision: int
    summary: str
    linked_ms: int
    resolved_ms: int | None
    detected_at: str | None
    #: The numbers behind the finding (counts, windows, thresholds, scores).
    key_numbers: dict[str, float | int]


class TimelineOut(_Out):
    id: int
    at_ms: int
    actor: str
    type: str
    detail: dict[str, Any]


class CaseDetailOut(_Out):
    case: CaseOut
    evidence: list[EvidenceOut]
    timeline: list[TimelineOut]
    children: list[int]
    #: Statuses this case may move to now.
    transitions: list[str]


class AssignIn(_In):
    #: Who takes the case; null unassigns.  Support agents usually send their own actor name.
    assignee: str | None = Field(default=None, min_length=1, max_length=128, pattern=NO_NUL)


class CommentIn(_In):
    text: str = Field(min_length=1, max_length=10_000, pattern=NO_NUL)


class StatusIn(_In):
    status: Status
    note: str | None = Field(default=None, max_length=10_000, pattern=NO_NUL)


class PriorityIn(_In):
    priority: Priority
    reason: str | None = Field(default=None, max_length=1_000, pattern=NO_NUL)


class FindingOut(_Out):
    finding_id: str
    revision: int
    kind: str
    severity: str
    status: str
    account_id: str | None
    detector: str
    summary: str
    first_seen: str
    last_seen: str
    detected_at: str
    created_ms: int
    subject: dict[str, Any]
    explanation: dict[str, Any]
    evidence: list[str]


class RevisionOut(_Out):
    revision: int
    severity: str
    status: str
    detected_at: str
    created_ms: int
    summary: str
    evidence: list[str]


class FindingDetailOut(_Out):
    finding: FindingOut
    revisions: list[RevisionOut]
    case_ids: list[int]


class FindingPage(_Out):
    items: list[FindingOut]
    limit: int
    offset: int


class VerifyIn(_In):
    """Give exactly one of ``case_id`` (the case's account) and ``account_id``."""

    code: str = Field(min_length=6, max_length=10, pattern=r"^[0-9 ]+$")
    case_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    account_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=NO_NUL)


class VerifyOut(_Out):
    outcome: Literal["verified", "wrong_code", "replayed", "not_enrolled", "rate_limited", "unavailable"]
    verified: bool
    attempts_left: int
    retry_after_s: int | None


class TokenIn(_In):
    name: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    role: Role
    expires_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(_Out):
    token_id: str
    name: str
    role: str
    created_ms: int
    created_by: str
    expires_ms: int | None
    revoked_ms: int | None
    last_used_ms: int | None


class NewTokenOut(_Out):
    #: The token itself: shown once, never stored.
    token: str
    info: TokenOut


class AuditOut(_Out):
    id: int
    at_ms: int
    actor: str
    action: str
    object_type: str
    object_id: str
    detail: dict[str, Any]


class MeOut(_Out):
    actor: str
    roles: list[str]
    via: str
    permissions: list[str]


class DayCounts(_Out):
    day: str
    counts: dict[str, int]


class CaseSlaCounts(_Out):
    category: str
    on_time: int
    breached: int
    paused: int


class StatsOut(_Out):
    findings_by_day: list[DayCounts]
    active_cases: list[CaseSlaCounts]
