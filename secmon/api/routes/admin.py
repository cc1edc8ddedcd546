"""Who am I, the dashboard numbers, the audit log, and API token management (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from secmon.api.auth import PERMISSIONS, Principal
from secmon.api.deps import AUTH_ERRORS, ApiError, allow, get_ctx, principal
from secmon.api.schemas import NO_NUL, AuditOut, ErrorOut, MeOut, NewTokenOut, StatsOut, TokenIn, TokenOut
from secmon.api.views import audit_out, stats_out

router = APIRouter(prefix="/api/v1", tags=["admin"], responses={**AUTH_ERRORS, 404: {"model": ErrorOut, "description": "no such token"}})
DAY_MS = 86_400_000


@router.get("/me", response_model=MeOut, summary="The caller's identity, roles and permissions")
def me(who: Principal = Depends(principal)) -> dict[str, Any]:
    return {"actor": who.actor, "roles": sorted(who.roles), "via": who.via,
            "permissions": sorted(p for p in PERMISSIONS if who.can(p))}  # fmt: skip


@router.get("/stats", response_model=StatsOut, summary="Findings per day by kind; active cases by SLA state")
def stats(request: Request, who: Principal = Depends(allow("stats.read")),
          days: int = Query(14, ge=1, le=90)) -> dict[str, Any]:  # fmt: skip
    ctx = get_ctx(request)
    return stats_out(ctx.engine, ctx.findings, ctx.clock(), days)


@router.get("/audit", response_model=list[AuditOut], summary="The audit log, newest first")
def audit_log(
    request: Request,
    who: Principal = Depends(allow("audit.read")),
    object_type: str = Query("case", min_length=1, max_length=32, pattern=r"^[a-z_]+$"),
    object_id: str | None = Query(None, min_length=1, max_length=128, pattern=NO_NUL),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    ctx = get_ctx(request)
    return [audit_out(e) for e in ctx.console.cases.audit_trail(object_id, object_type=object_type, limit=limit)]


@router.get("/tokens", response_model=list[TokenOut], summary="API tokens (never their secrets)")
def list_tokens(request: Request, who: Principal = Depends(allow("tokens.manage"))) -> list[dict[str, Any]]:
    return [t.__dict__ for t in get_ctx(request).tokens.list()]


@router.post("/tokens", response_model=NewTokenOut, status_code=201, summary="Create an API token (shown once)")
def create_token(request: Request, body: TokenIn, who: Principal = Depends(allow("tokens.manage"))) -> dict[str, Any]:
    ctx = get_ctx(request)
    now = ctx.clock()
    expires = now + body.expires_days * DAY_MS if body.expires_days else None
    try:
        new = ctx.tokens.create(name=body.name, role=body.role, actor=who.actor, now_ms=now, expires_ms=expires)
    except ValueError as exc:
        raise ApiError(400, "invalid_argument", str(exc)) from None
    return {"token": new.token, "info": new.info.__dict__}


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token (its sessions end too)")
def revoke_token(request: Request, token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")],
                 who: Principal = Depends(allow("tokens.manage"))) -> None:  # fmt: skip
    ctx = get_ctx(request)
    if not ctx.tokens.revoke(token_id, actor=who.actor, now_ms=ctx.clock()):
        raise ApiError(404, "not_found", f"no token {token_id}")
