"""``/not-me``: where the "this wasn't me" links of user notifications land (public).

The action layer makes links ``{alerts.notifications.not_me.base_url}?t=<token>``; point
``base_url`` at ``https://<console>/not-me`` (or let the wallet's page forward here).

* ``GET /not-me?t=…`` only shows a confirmation button: mail scanners and link previewers
  fetch links, and a single-use link that escalated on GET would be spent (and a case
  escalated) by a robot before the user ever clicked.
* ``POST /not-me`` redeems the token (:meth:`secmon.alerts.wiring.Console.redeem_not_me_link`).

No authentication; rate-limited per client address; the answer is the same neutral page for
every outcome except an accepted report (used, expired, invalid and rate-limited look alike,
so the page cannot be used to probe tokens).  Every attempt is audited (accepted ones by the
action layer; the others here, with a digest of the token, never the token).
"""

from __future__ import annotations

import hashlib

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from secmon.alerts.cases import audit
from secmon.alerts.redact import mask_ip
from secmon.api.context import ApiContext
from secmon.api.deps import client_address, get_ctx
from secmon.api.pages import render

router = APIRouter(tags=["public"])
_MAX_TOKEN = 512


@router.get("/not-me", response_class=HTMLResponse, summary="'This wasn't me' link: confirmation page")
def confirm_page(request: Request, t: str = Query("", max_length=4096)) -> Response:
    return render(request, "not_me.html", token=t[:_MAX_TOKEN], stage="confirm")


@router.post("/not-me", response_class=HTMLResponse, summary="'This wasn't me' link: report (redeems the token)")
async def report(request: Request) -> Response:
    ctx = get_ctx(request)
    form = await request.form()
    token = form.get("t")
    token = token[:4096] if isinstance(token, str) else ""
    now = ctx.clock()
    address = client_address(request)
    if not ctx.not_me_limit.allow(address, now):
        _audit_attempt(ctx, "rate_limited", token, address, now)
        return render(request, "not_me.html", stage="done", accepted=False, status=429)
    result = ctx.console.redeem_not_me_link(token)
    if result.status != "accepted":
        _audit_attempt(ctx, result.status, token, address, now)
    return render(request, "not_me.html", stage="done", accepted=result.status == "accepted")


def _audit_attempt(ctx: ApiContext, status: str, token: str, address: str, now_ms: int) -> None:
    """An audit row for a refused redemption: a digest of the token and a masked address."""
    engine = ctx.engine
    ref = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]
    detail = orjson.dumps({"status": status, "client": mask_ip(address) or "unknown"}).decode()
    with engine.begin() as conn:
        audit(conn, "public", "not_me.refused", "not_me_attempt", ref, detail, now_ms)
