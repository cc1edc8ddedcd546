"""FastAPI dependencies: the app context, the caller, and permission checks.

A route declares ``who: Principal = Depends(allow("cases.work"))``; the check order is
credential (401 without a valid one) → CSRF for cookie-authenticated writes (403) →
permission (403).  The OpenAPI spec advertises bearer auth, which is what API clients use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from secmon.api.auth import SESSION_COOKIE, AuthError, Principal, csrf_ok
from secmon.api.context import ApiContext
from secmon.api.schemas import ErrorOut

bearer_scheme = HTTPBearer(auto_error=False, description="An API token (`smk_…`) or an OIDC access token (JWT).")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Error answers every authenticated route may give (for the OpenAPI spec).
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the request is well-formed but not acceptable (e.g. blank text)"},
    401: {"model": ErrorOut, "description": "no valid credential"},
    403: {"model": ErrorOut, "description": "the caller's role may not do this (or a missing CSRF token)"},
}


class ApiError(Exception):
    """An error answer: ``{"error": code, "detail": text}`` with ``status``."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def unauthorized(reason: str) -> ApiError:
    return ApiError(401, "unauthorized", reason, {"WWW-Authenticate": 'Bearer realm="secmon"'})


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def authenticate(request: Request, creds: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller from the bearer header, else the session cookie; raises 401/403."""
    ctx = get_ctx(request)
    if creds is not None:
        try:
            return ctx.auth.bearer(creds.credentials)
        except AuthError as exc:
            ctx.api_metrics.auth_failures.labels("bearer").inc()
            raise unauthorized(exc.reason) from None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        who = ctx.auth.session(cookie)
        if who is None:
            ctx.api_metrics.auth_failures.labels("session").inc()
            raise unauthorized("session expired; log in again")
        if request.method not in SAFE_METHODS and not csrf_ok(who, request.headers.get("x-csrf-token")):
            raise ApiError(403, "csrf", "missing or wrong X-CSRF-Token for a cookie-authenticated write")
        return who
    raise unauthorized("no credential: send Authorization: Bearer <token>")


def principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> Principal:
    who = authenticate(request, creds)
    request.state.principal = who
    return who


def allow(permission: str) -> Callable[..., Any]:
    """A dependency that admits callers holding ``permission`` (see ``auth.PERMISSIONS``)."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if not who.can(permission):
            raise ApiError(403, "forbidden", f"your role may not do this ({permission})")
        return who

    check.__name__ = f"allow_{permission.replace('.', '_')}"
    return check
