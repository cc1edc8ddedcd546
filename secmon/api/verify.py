"""Caller verification: before support unlocks an account or changes anything for a caller,
the caller reads out the code their authenticator app shows.

In one transaction per attempt (the account's ``totp_state`` row is locked, so concurrent
attempts are serialised on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` does the same):

1. at most ``max_attempts`` per account in ``window_ms`` (all outcomes count, except
   attempts refused by the limit itself, which would otherwise keep an account locked
   forever once someone hammers it);
2. the secret store matches the code to a time step (the secret never leaves the store);
3. a time step at or before the last one accepted is a replay (RFC 6238 §5.2: a code is
   accepted once; an older code after a newer one is refused too);
4. the attempt row, an ``audit_log`` row (who, for which account and case, the outcome —
   never the code) and, with a case, a timeline entry are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson
from sqlalchemy import Engine, func, insert, select, update

from secmon.alerts.cases import audit
from secmon.alerts.tables import case_event
from secmon.api.secrets import SecretStore
from secmon.api.settings import VerificationSettings
from secmon.api.tables import totp_state, verification_attempt
from secmon.store.db import insert_ignore

Outcome = Literal["verified", "wrong_code", "replayed", "not_enrolled", "rate_limited", "unavailable"]


@dataclass(frozen=True)
class VerificationResult:
    outcome: Outcome
    #: Attempts left in the current window (after this one).
    attempts_left: int
    #: For ``rate_limited``: milliseconds until the next attempt is allowed.
    retry_after_ms: int | None = None

    @property
    def verified(self) -> bool:
        return self.outcome == "verified"


class CallerVerifier:
    def __init__(self, engine: Engine, store: SecretStore | None, settings: VerificationSettings) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings

    def verify(self, account_id: str, code: str, *, actor: str, now_ms: int,
               case_id: int | None = None) -> VerificationResult:  # fmt: skip
        s = self.settings
        code = code.strip().replace(" ", "")
        with self.engine.begin() as conn:
            insert_ignore(conn, totp_state, [{"account_id": account_id, "last_timecode": None, "updated_ms": now_ms}])
            state = conn.execute(
                select(totp_state).where(totp_state.c.account_id == account_id).with_for_update()
            ).one()
            since = now_ms - s.window_ms
            counted = verification_attempt.c.outcome != "rate_limited"
            used, oldest = conn.execute(
                select(func.count(), func.min(verification_attempt.c.at_ms)).where(
                    verification_attempt.c.account_id == account_id, verification_attempt.c.at_ms > since, counted)
            ).one()  # fmt: skip
            left = s.max_attempts - int(used)
            result: VerificationResult
            if left <= 0:
                result = VerificationResult("rate_limited", 0, int(oldest) + s.window_ms - now_ms + 1)
            elif self.store is None:
                result = VerificationResult("unavailable", left)
            else:
                left -= 1
                if not self.store.enrolled(account_id):
                    result = VerificationResult("not_enrolled", left)
                else:
                    step = self.store.match_totp(account_id, code, at_s=now_ms / 1000, valid_window=s.valid_window)
                    if step is None:
                        result = VerificationResult("wrong_code", left)
                    elif state.last_timecode is not None and step <= state.last_timecode:
                        result = VerificationResult("replayed", left)
                    else:
                        conn.execute(update(totp_state).where(totp_state.c.account_id == account_id)
                                     .values(last_timecode=step, updated_ms=now_ms))  # fmt: skip
                        result = VerificationResult("verified", left)
            if result.outcome != "unavailable":
                conn.execute(insert(verification_attempt).values(account_id=account_id, at_ms=now_ms, actor=actor[:128],
                                                                 outcome=result.outcome))  # fmt: skip
            detail = orjson.dumps({"outcome": result.outcome, "case_id": case_id}).decode()
            audit(conn, actor, "caller.verify", "account", account_id, detail, now_ms)
            if case_id is not None:
                conn.execute(insert(case_event).values(case_id=case_id, at_ms=now_ms, actor=actor[:128],
                                                       type="caller_verification",
                                                       detail=orjson.dumps({"outcome": result.outcome}).decode()))  # fmt: skip
        return result
