"""``/api/v1/cases``: the support queue (sorted by SLA), a case with its timeline, and the
writes support makes (take/assign, comment, change status; priority for analysts).

Writes go through :class:`secmon.alerts.cases.CaseService` with the caller as ``actor``, so
the action layer records them in the case timeline and the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from secmon.api.auth import Principal
from secmon.api.deps import AUTH_ERRORS, allow, get_ctx
from secmon.api.schemas import (
    MAX_ID,
    NO_NUL,
    AssignIn,
    CaseDetailOut,
    CaseOut,
    Category,
    CommentIn,
    ErrorOut,
    Priority,
    PriorityIn,
    StatusIn,
    TimelineOut,
)
from secmon.api.views import case_detail_out, case_out

router = APIRouter(prefix="/api/v1/cases", tags=["cases"], responses={**AUTH_ERRORS, 404: {"model": ErrorOut, "description": "no such case"}, 409: {"model": ErrorOut, "description": "transition not allowed"}})
CaseId = Annotated[int, Path(ge=1, le=MAX_ID)]
StatusFilter = Literal["all", "active", "new", "open", "pending_user", "resolved", "closed"]
Sort = Literal["due", "-due", "opened", "-opened", "priority", "updated", "-updated"]


@router.get("", response_model=list[CaseOut], summary="List cases (default: active, most urgent SLA first)")
def list_cases(
    request: Request,
    who: Principal = Depends(allow("cases.read")),
    status: StatusFilter | None = Query("active", description="`active` = new, open or pending_user; `all` = any"),
    category: Category | None = None,
    priority: Priority | None = None,
    account_id: str | None = Query(None, min_length=1, max_length=128, pattern=NO_NUL),
    assignee: str | None = Query(None, min_length=1, max_length=128, pattern=NO_NUL),
    breached: bool | None = None,
    sort: Sort = "due",
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[dict[str, Any]]:
    ctx = get_ctx(request)
    cases = ctx.console.cases.list_cases(status=None if status == "all" else status, category=category, priority=priority, account_id=account_id,
                                         assignee=assignee, breached=breached, sort=sort, limit=limit, offset=offset)  # fmt: skip
    now = ctx.clock()
    return [case_out(c, who, now) for c in cases]


@router.get("/{case_id}", response_model=CaseDetailOut, summary="A case with its evidence and timeline")
def get_case(request: Request, case_id: CaseId, who: Principal = Depends(allow("cases.read"))) -> dict[str, Any]:
    ctx = get_ctx(request)
    return case_detail_out(ctx.console.cases.get_case(case_id), who, ctx.clock(), ctx.engine)


@router.post("/{case_id}/assign", response_model=CaseOut, summary="Assign (or take) a case; null unassigns")
def assign(request: Request, case_id: CaseId, body: AssignIn,
           who: Principal = Depends(allow("cases.work"))) -> dict[str, Any]:  # fmt: skip
    ctx = get_ctx(request)
    return case_out(ctx.console.cases.assign(case_id, body.assignee, actor=who.actor), who, ctx.clock())


@router.post("/{case_id}/take", response_model=CaseOut, summary="Assign a case to yourself")
def take(request: Request, case_id: CaseId, who: Principal = Depends(allow("cases.work"))) -> dict[str, Any]:
    ctx = get_ctx(request)
    return case_out(ctx.console.cases.assign(case_id, who.actor, actor=who.actor), who, ctx.clock())


@router.post("/{case_id}/comments", response_model=TimelineOut, status_code=201, summary="Add a note to the timeline")
def comment(request: Request, case_id: CaseId, body: CommentIn,
            who: Principal = Depends(allow("cases.comment"))) -> dict[str, Any]:  # fmt: skip
    ctx = get_ctx(request)
    entry = ctx.console.cases.comment(case_id, body.text, actor=who.actor)
    return {"id": entry.id, "at_ms": entry.at_ms, "actor": entry.actor, "type": entry.type, "detail": entry.detail}


@router.post("/{case_id}/status", response_model=CaseOut, summary="Change the status along allowed transitions")
def change_status(request: Request, case_id: CaseId, body: StatusIn,
                  who: Principal = Depends(allow("cases.work"))) -> dict[str, Any]:  # fmt: skip
    ctx = get_ctx(request)
    return case_out(ctx.console.cases.change_status(case_id, body.status, actor=who.actor, note=body.note), who,
                    ctx.clock())  # fmt: skip


@router.post("/{case_id}/priority", response_model=CaseOut, summary="Change the priority (and the SLA due time)")
def set_priority(request: Request, case_id: CaseId, body: PriorityIn,
                 who: Principal = Depends(allow("cases.priority"))) -> dict[str, Any]:  # fmt: skip
    ctx = get_ctx(request)
    return case_out(ctx.console.cases.set_priority(case_id, body.priority, actor=who.actor, reason=body.reason), who,
                    ctx.clock())  # fmt: skip
