"""``/api/v1/findings``: the security feed (latest revision of each finding, filtered), one
finding with its revision history and the cases it is on, and the live stream (SSE).

The stream follows the ``finding`` table by its (created_ms, finding_id, revision) cursor.
``created_ms`` is the writer's wall clock at commit, and two workers can commit slightly out
of that order, so each poll re-reads a short grace window and skips what it already sent
(:class:`StreamTail`).  ``id:`` of each event is the cursor, so a reconnecting EventSource
(``Last-Event-ID``) resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from secmon.api.auth import Principal
from secmon.api.deps import AUTH_ERRORS, ApiError, allow, get_ctx
from secmon.api.findings import Cursor, FindingQuery, FindingRow, severities_at_least
from secmon.api.schemas import NO_NUL, ErrorOut, FindingDetailOut, FindingPage, Severity
from secmon.api.views import finding_out, revision_out

router = APIRouter(prefix="/api/v1/findings", tags=["findings"], responses={**AUTH_ERRORS, 404: {"model": ErrorOut, "description": "no such finding"}})
Kind = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
GRACE_MS = 5_000
CURSOR = r"^\d{1,15}:[^:\x00]{1,32}:\d{1,9}$"
#: One event of the stream (OpenAPI before 3.2: a text/event-stream ``schema`` describes each event).
SSE_EVENT = {
    "type": "object",
    "required": ["event", "data", "id"],
    "properties": {
        "event": {"const": "finding"},
        "id": {"type": "string", "pattern": CURSOR, "description": "the resume cursor"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/FindingOut"}},
    },
}
HEARTBEAT_MS = 15_000


def _ms(dt: datetime | None) -> int | None:
    return int(dt.timestamp() * 1000) if dt is not None else None


def _filters(kind: Sequence[str] | None, severity: Sequence[str] | None, min_severity: str | None, account_id: str | None,
             status: str | None, since: datetime | None, until: datetime | None) -> dict[str, Any]:  # fmt: skip
    sev = list(severity) if severity else None
    if min_severity is not None:
        floor = severities_at_least(min_severity)
        sev = [s for s in (sev or floor) if s in floor]
    return {"kind": kind or None, "severity": sev, "account_id": account_id, "status": status,
            "since_ms": _ms(since), "until_ms": _ms(until)}  # fmt: skip


@router.get("", response_model=FindingPage, summary="The findings feed: latest revisions, newest first")
def list_findings(
    request: Request,
    who: Principal = Depends(allow("findings.read")),
    kind: list[Kind] | None = Query(None, description="repeat for several kinds"),
    severity: list[Severity] | None = Query(None, description="repeat for several severities"),
    min_severity: Severity | None = None,
    account_id: str | None = Query(None, min_length=1, max_length=128, pattern=NO_NUL),
    status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = None,
    since: AwareDatetime | None = Query(None, description="detected at or after (RFC 3339 with offset)"),
    until: AwareDatetime | None = Query(None, description="detected before"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> dict[str, Any]:
    ctx = get_ctx(request)
    rows = ctx.findings.latest(limit=limit, offset=offset,
                             **_filters(kind, severity, min_severity, account_id, status, since, until))  # fmt: skip
    return {"items": [finding_out(r) for r in rows], "limit": limit, "offset": offset}


class StreamTail:
    """Follows the finding table from a cursor, re-reading ``grace_ms`` back for late commits."""

    def __init__(self, query: FindingQuery, start: Cursor | None, filters: dict[str, Any],
                 grace_ms: int = GRACE_MS) -> None:  # fmt: skip
        self.query = query
        self.filters = filters
        self.grace_ms = grace_ms
        self.high = start.created_ms if start is not None else 0
        self.sent: dict[tuple[int, str, int], None] = {}
        if start is not None:  # everything up to the start position counts as sent
            low = Cursor(max(start.created_ms - grace_ms, 0), "", 0)
            for r in query.after(low, limit=10_000, **filters):
                if (r.created_ms, r.finding_id, r.revision) <= (start.created_ms, start.finding_id, start.revision):
                    self.sent[(r.created_ms, r.finding_id, r.revision)] = None

    def poll(self, limit: int = 1_000) -> list[FindingRow]:
        low = Cursor(max(self.high - self.grace_ms, 0), "", 0) if self.high else None
        rows = self.query.after(low, limit=limit + len(self.sent), **self.filters)
        fresh = [r for r in rows if (r.created_ms, r.finding_id, r.revision) not in self.sent][:limit]
        for r in fresh:
            self.sent[(r.created_ms, r.finding_id, r.revision)] = None
            self.high = max(self.high, r.created_ms)
        floor = self.high - self.grace_ms
        for key in [k for k in self.sent if k[0] < floor]:
            del self.sent[key]
        return fresh


def _event(r: FindingRow) -> bytes:
    cursor = Cursor(r.created_ms, r.finding_id, r.revision).encode()
    return b"id: " + cursor.encode() + b"\nevent: finding\ndata: " + orjson.dumps(finding_out(r)) + b"\n\n"


@router.get(
    "/stream",
    summary="Live stream of new finding revisions (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                     "description": "`event: finding` per new revision; `id:` is the resume cursor"}},
)
async def stream(
    request: Request,
    who: Principal = Depends(allow("findings.read")),
    kind: list[Kind] | None = Query(None),
    min_severity: Severity | None = None,
    after: str | None = Query(None, max_length=64, pattern=CURSOR, description="resume after this cursor"),
    limit: int | None = Query(None, ge=1, le=10_000, description="close the stream after this many events"),
    last_event_id: str | None = Header(None, max_length=64, pattern=CURSOR,
                                       description="what a reconnecting EventSource sends (same as after)"),
) -> StreamingResponse:
    ctx = get_ctx(request)
    filters = _filters(kind, None, min_severity, None, None, None, None)
    text = after or last_event_id
    start = Cursor.decode(text) if text else None
    if text and start is None:  # the pattern above admits only decodable cursors
        raise ApiError(400, "invalid_argument", "after/Last-Event-ID must be <created_ms>:<finding_id>:<revision>")
    if start is None:
        start = await anyio.to_thread.run_sync(ctx.findings.head)
    tail = await anyio.to_thread.run_sync(lambda: StreamTail(ctx.findings, start, filters))
    # A connection lasts at most stream_max_ms (monotonic) and never past its credential's expiry.
    ends = time.monotonic() + ctx.settings.stream_max_ms / 1000
    expires = who.expires_ms
    poll_s = ctx.settings.stream_poll_ms / 1000

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 3000\n\n"
        sent = 0
        quiet_ms = 0
        while time.monotonic() < ends and (expires is None or ctx.clock() < expires):
            rows = await anyio.to_thread.run_sync(tail.poll)
            for r in rows:
                yield _event(r)
                sent += 1
                if limit is not None and sent >= limit:
                    return
            if rows:
                quiet_ms = 0
            else:
                quiet_ms += ctx.settings.stream_poll_ms
                if quiet_ms >= HEARTBEAT_MS:
                    quiet_ms = 0
                    yield b": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await anyio.sleep(poll_s)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip


@router.get("/{finding_id}", response_model=FindingDetailOut,
            summary="A finding: latest revision, revision history, cases")  # fmt: skip
def get_finding(
    request: Request,
    finding_id: Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")],
    who: Principal = Depends(allow("findings.read")),
) -> dict[str, Any]:
    ctx = get_ctx(request)
    detail = ctx.findings.get(finding_id)
    if detail is None:
        raise ApiError(404, "not_found", f"no finding {finding_id}")
    return {"finding": finding_out(detail.latest), "revisions": [revision_out(r) for r in detail.revisions],
            "case_ids": detail.case_ids}  # fmt: skip
