"""``POST /api/v1/verifications``: check the code a caller reads from their authenticator.

Support asks for it before unlocking an account or changing anything for a caller.  With a
``case_id`` the case's account is checked (the agent never needs the raw account id) and
the outcome lands on the case timeline.  Rate-limited per account, audited, replay-safe —
see :mod:`secmon.api.verify`.  The code and the secret never appear in a response or log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from secmon.api.auth import Principal
from secmon.api.deps import AUTH_ERRORS, ApiError, allow, get_ctx
from secmon.api.schemas import ErrorOut, VerifyIn, VerifyOut
from secmon.api.verify import VerificationResult

router = APIRouter(prefix="/api/v1/verifications", tags=["caller verification"], responses={**AUTH_ERRORS, 404: {"model": ErrorOut, "description": "no such case"}})


def run_verification(request: Request, who: Principal, *, code: str, case_id: int | None,
                     account_id: str | None) -> VerificationResult:  # fmt: skip
    """Resolve the account (from the case, or given) and verify; shared with the console."""
    ctx = get_ctx(request)
    if (case_id is None) == (account_id is None):
        raise ApiError(400, "invalid_argument", "give exactly one of case_id and account_id")
    if case_id is not None:
        case = ctx.console.cases.get_case(case_id).case
        if case.account_id is None:
            raise ApiError(400, "invalid_argument", "this case is not about one account")
        account_id = case.account_id
    assert account_id is not None
    result = ctx.verifier.verify(account_id, code, actor=who.actor, now_ms=ctx.clock(), case_id=case_id)
    ctx.api_metrics.verifications.labels(result.outcome).inc()
    return result


def result_out(result: VerificationResult) -> dict[str, Any]:
    retry = -(-result.retry_after_ms // 1000) if result.retry_after_ms is not None else None
    return {"outcome": result.outcome, "verified": result.verified, "attempts_left": result.attempts_left,
            "retry_after_s": retry}  # fmt: skip


@router.post(
    "",
    response_model=VerifyOut,
    summary="Verify a caller's authenticator code (once per code; rate-limited per account)",
    responses={429: {"model": VerifyOut, "description": "too many attempts for this account"},
               503: {"model": VerifyOut, "description": "no secret store is configured"}},
)
def verify_caller(request: Request, body: VerifyIn, who: Principal = Depends(allow("callers.verify"))) -> Any:
    result = run_verification(request, who, code=body.code, case_id=body.case_id, account_id=body.account_id)
    out = result_out(result)
    if result.outcome == "rate_limited":
        return JSONResponse(out, status_code=429, headers={"Retry-After": str(out["retry_after_s"])})
    if result.outcome == "unavailable":
        return JSONResponse(out, status_code=503)
    return out
