"""The web console: log-in, the case queue, a case, the findings feed, a finding, the dashboard.

Server-rendered (Jinja2); forms post back here with the session's CSRF token and redirect
(post/redirect/get).  Pages authenticate with the session cookie only — a bearer header is
for the JSON API.  Pages are excluded from the OpenAPI spec.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from secmon.alerts.cases import CaseError, CaseNotFound, InvalidArgument, InvalidTransition
from secmon.alerts.not_me import NOT_ME_KIND
from secmon.api.auth import SESSION_COOKIE, AuthError, Principal, csrf_ok
from secmon.api.charts import grouped_hbars, stacked_bars
from secmon.api.deps import ApiError, client_address, get_ctx
from secmon.api.findings import severities_at_least
from secmon.api.i18n import LANG_COOKIE, LOCALES, Translator
from secmon.api.pages import locale_of, render
from secmon.api.routes.verify import result_out, run_verification
from secmon.api.schemas import MAX_ID
from secmon.api.views import case_detail_out, case_out, finding_out, revision_out, stats_out
from secmon.contract import FINDING_KINDS

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "secmon_login_csrf"
CaseId = Annotated[int, Path(ge=1, le=MAX_ID)]
ONE_YEAR_S = 365 * 86_400


class LoginRequired(Exception):
    """Raised by pages when there is no live session (the app redirects to /login)."""


class PageForbidden(Exception):
    """Raised by pages the caller's role may not see (the app renders a 403 page)."""


def _secure(request: Request) -> bool:
    mode = get_ctx(request).settings.cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def session_principal(request: Request) -> Principal:
    cookie = request.cookies.get(SESSION_COOKIE)
    who = get_ctx(request).auth.session(cookie) if cookie else None
    if who is None:
        raise LoginRequired
    return who


def page_principal(request: Request, permission: str) -> Principal:
    who = session_principal(request)
    if not who.can(permission):
        raise PageForbidden
    return who


def _safe_next(target: str | None) -> str:
    """Only same-site paths (``/x``), never ``//host`` or a scheme: no open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")) and len(target) < 2000:
        return target
    return "/"


def _same_origin(request: Request) -> bool:
    """Reject cross-site form posts outright (SameSite=Strict and the CSRF token back this up)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        return origin == f"{request.url.scheme}://{request.url.netloc}"
    return True


async def _form(request: Request, who: Principal) -> dict[str, str]:
    """The posted form of a logged-in user, after the origin and CSRF checks (else 403)."""
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    if not _same_origin(request) or not csrf_ok(who, data.get("csrf")):
        raise PageForbidden
    return data


def _back(case_id: int, msg: str) -> RedirectResponse:
    return RedirectResponse(f"/cases/{case_id}?msg={quote(msg)}", status_code=303)


# ------------------------------------------------------------------------------ log-in
@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    try:
        who = session_principal(request)
    except LoginRequired:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/cases" if who.can("cases.work") else "/findings", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = Query(None, max_length=2000)) -> Response:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", csrf_login=token, next=_safe_next(next), error=None)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/login")
    return resp


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    ctx = get_ctx(request)
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    nxt = _safe_next(data.get("next"))
    cookie_csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    given = data.get("csrf", "")

    def again(error: str, status: int) -> Response:
        token = secrets.token_urlsafe(24)
        resp = render(request, "login.html", status=status, csrf_login=token, next=nxt, error=error)
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        path="/login")  # fmt: skip
        return resp

    if not _same_origin(request) or not cookie_csrf or not hmac.compare_digest(cookie_csrf, given):
        return again("login.error_csrf", 403)
    if not ctx.login_limit.allow(client_address(request), ctx.clock()):
        return again("login.error_rate", 429)
    try:
        who = ctx.auth.bearer(data.get("token", "")[:4096])
    except AuthError:
        ctx.api_metrics.auth_failures.labels("login").inc()
        return again("login.error_token", 401)
    cookie, _ = ctx.auth.open_session(who)
    resp = RedirectResponse(nxt if nxt != "/" else ("/cases" if who.can("cases.work") else "/findings"), 303)
    resp.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", secure=_secure(request), path="/",
                    max_age=ctx.settings.session_ttl_ms // 1000)  # fmt: skip
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    try:
        who = session_principal(request)
    except LoginRequired:
        return RedirectResponse("/login", status_code=303)
    await _form(request, who)
    get_ctx(request).auth.close_session(who)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/lang/{locale}")
def switch_language(request: Request, locale: str, next: str | None = Query(None, max_length=2000)) -> Response:
    resp = RedirectResponse(_safe_next(next), status_code=303)
    if locale in LOCALES:
        resp.set_cookie(LANG_COOKIE, locale, max_age=ONE_YEAR_S, samesite="strict", secure=_secure(request),
                        httponly=True, path="/")  # fmt: skip
    return resp


# ------------------------------------------------------------------------------ cases
@router.get("/cases", response_class=HTMLResponse)
def case_queue(
    request: Request,
    status: str = Query("active", pattern="^(all|active|new|open|pending_user|resolved|closed)$"),
    category: str | None = Query(None, pattern="^(login_lockout|deposit_withdrawal|account_security|platform_incident)$"),
    priority: str | None = Query(None, pattern="^P[1-4]$"),
    mine: bool = False,
    breached: bool | None = None,
    page: int = Query(1, ge=1, le=10_000),
) -> Response:
    who = page_principal(request, "cases.read")
    ctx = get_ctx(request)
    size = 50
    cases = ctx.console.cases.list_cases(status=None if status == "all" else status, category=category or None,
                                         priority=priority or None, assignee=who.actor if mine else None,
                                         breached=breached, sort="due", limit=size + 1, offset=(page - 1) * size)  # fmt: skip
    now = ctx.clock()
    rows = [case_out(c, who, now) for c in cases[:size]]
    filters = {"status": status, "category": category or "", "priority": priority or "", "mine": mine,
               "breached": "" if breached is None else ("1" if breached else "0")}  # fmt: skip
    return render(request, "cases.html", who, cases=rows, filters=filters, page=page, more=len(cases) > size)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: CaseId, msg: str | None = Query(None, max_length=64)) -> Response:
    who = page_principal(request, "cases.read")
    return _case_page(request, who, case_id, msg=msg)


def _case_page(request: Request, who: Principal, case_id: int, *, msg: str | None = None, error: str | None = None,
               status: int = 200, verification: dict[str, Any] | None = None) -> Response:  # fmt: skip
    ctx = get_ctx(request)
    try:
        detail = case_detail_out(ctx.console.cases.get_case(case_id), who, ctx.clock(), ctx.engine)
    except CaseNotFound:
        return render(request, "error.html", who, status=404, message="error.not_found")
    return render(request, "case.html", who, status=status, d=detail, c=detail["case"], msg=msg, error=error,
                  verification=verification)  # fmt: skip


def _case_error_page(request: Request, who: Principal, case_id: int, exc: CaseError) -> Response:
    """The case page again, saying why the action was refused."""
    if isinstance(exc, CaseNotFound):
        key, status = "error.not_found", 404
    elif isinstance(exc, InvalidTransition):
        key, status = "error.transition", 409
    elif isinstance(exc, InvalidArgument):
        key, status = "error.argument", 422
    else:
        key, status = "error.generic", 400
    return _case_page(request, who, case_id, error=key, status=status)


@router.post("/cases/{case_id}/take")
async def take_case(request: Request, case_id: CaseId) -> Response:
    who = page_principal(request, "cases.work")
    await _form(request, who)
    try:
        get_ctx(request).console.cases.assign(case_id, who.actor, actor=who.actor)
    except CaseError as exc:
        return _case_error_page(request, who, case_id, exc)
    return _back(case_id, "taken")


@router.post("/cases/{case_id}/comment")
async def comment_case(request: Request, case_id: CaseId) -> Response:
    who = page_principal(request, "cases.comment")
    data = await _form(request, who)
    try:
        get_ctx(request).console.cases.comment(case_id, data.get("text", "")[:10_000].replace("\x00", ""),
                                               actor=who.actor)  # fmt: skip
    except CaseError as exc:
        return _case_error_page(request, who, case_id, exc)
    return _back(case_id, "commented")


@router.post("/cases/{case_id}/status")
async def status_case(request: Request, case_id: CaseId) -> Response:
    who = page_principal(request, "cases.work")
    data = await _form(request, who)
    note = data.get("note", "").strip().replace("\x00", "")[:10_000] or None
    try:
        get_ctx(request).console.cases.change_status(case_id, data.get("status", ""), actor=who.actor, note=note)
    except CaseError as exc:
        return _case_error_page(request, who, case_id, exc)
    return _back(case_id, "status")


@router.post("/cases/{case_id}/verify")
async def verify_caller(request: Request, case_id: CaseId) -> Response:
    who = page_principal(request, "callers.verify")
    data = await _form(request, who)
    code = data.get("code", "")
    if not (6 <= len(code.replace(" ", "")) <= 10 and code.replace(" ", "").isdigit()):
        return _case_page(request, who, case_id, error="verify.bad_format", status=422)
    try:
        result = run_verification(request, who, code=code, case_id=case_id, account_id=None)
    except CaseError as exc:
        return _case_error_page(request, who, case_id, exc)
    except ApiError as exc:  # the case is not about one account
        return _case_page(request, who, case_id, error="verify.no_account", status=exc.status)
    status = 429 if result.outcome == "rate_limited" else 200
    return _case_page(request, who, case_id, verification=result_out(result), status=status)


# ------------------------------------------------------------------------------ findings
@router.get("/findings", response_class=HTMLResponse)
def findings_feed(
    request: Request,
    kind: str | None = Query(None, pattern="^[a-z0-9_]*$", max_length=64),
    min_severity: str | None = Query(None, pattern="^(|info|low|medium|high|critical)$"),
    account_id: str | None = Query(None, max_length=128, pattern=r"^[^\x00]*$"),
    since: str | None = Query(None, pattern=r"^(|\d{4}-\d{2}-\d{2})$"),
    page: int = Query(1, ge=1, le=10_000),
) -> Response:
    who = page_principal(request, "findings.read")
    ctx = get_ctx(request)
    size = 50
    since_ms = None
    if since:
        try:
            since_ms = int(datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            since_ms = None
    rows = ctx.findings.latest(limit=size + 1, offset=(page - 1) * size, kind=[kind] if kind else None,
                             severity=severities_at_least(min_severity) if min_severity else None,
                             account_id=account_id or None, since_ms=since_ms)  # fmt: skip
    head = ctx.findings.head()
    filters = {"kind": kind or "", "min_severity": min_severity or "", "account_id": account_id or "",
               "since": since or ""}  # fmt: skip
    return render(request, "findings.html", who, findings=[finding_out(r) for r in rows[:size]], filters=filters,
                  kinds=ctx.findings.kinds(), all_kinds=[*FINDING_KINDS, NOT_ME_KIND], page=page, more=len(rows) > size,
                  cursor=head.encode() if head is not None else "")  # fmt: skip


@router.get("/findings/{finding_id}", response_class=HTMLResponse)
def finding_page(request: Request,
                 finding_id: Annotated[str, Path(max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]) -> Response:  # fmt: skip
    who = page_principal(request, "findings.read")
    detail = get_ctx(request).findings.get(finding_id)
    if detail is None:
        return render(request, "error.html", who, status=404, message="error.not_found")
    return render(request, "finding.html", who, f=finding_out(detail.latest),
                  revisions=[revision_out(r) for r in detail.revisions], case_ids=detail.case_ids)  # fmt: skip


# ------------------------------------------------------------------------------ dashboard
@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    who = page_principal(request, "stats.read")
    ctx = get_ctx(request)
    t = Translator(locale_of(request))
    stats = stats_out(ctx.engine, ctx.findings, ctx.clock(), 14)
    days = [d["day"] for d in stats["findings_by_day"]]
    kinds = sorted({k for d in stats["findings_by_day"] for k in d["counts"]})
    series = {k: [d["counts"].get(k, 0) for d in stats["findings_by_day"]] for k in kinds}
    findings_chart = stacked_bars(days, series, {k: t.opt("kind", k) for k in kinds}, title=t("dash.findings_title"))
    parts = {"on_time": (t("dash.on_time"), "#009E73"), "paused": (t("dash.paused"), "#56B4E9"),
             "breached": (t("dash.breached"), "#D55E00")}  # fmt: skip
    rows = [(t.opt("category", r["category"]), {k: r[k] for k in parts}) for r in stats["active_cases"]]
    cases_chart = grouped_hbars(rows, parts, title=t("dash.cases_title"))
    return render(request, "dashboard.html", who, findings_chart=findings_chart, cases_chart=cases_chart,
                  stats=stats)  # fmt: skip
