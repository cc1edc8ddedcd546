"""The "this wasn't me" link: signed, expiring after 7 days, usable once.

A token is ``base64url(claims) "." base64url(HMAC-SHA256(key, "secmon-not-me.v1." + claims))``
where the claims are only ``{"v": 1, "tid": <token id>, "exp": <unix seconds>}``: who and
which case it is about stay in ``not_me_token`` (the link reveals nothing, and the row is
what makes it single-use).  The token id is derived from the message's dedup key, so a
message rendered again after a crash carries the same link.

:meth:`NotMeService.redeem` is what the HTTP endpoint calls.  In one transaction it marks
the token used, escalates the case to P1 (reopening it, or opening an account-security case
if there is none), writes a ``critical`` feed record (kind ``user_reported_not_me``) to the
``findings`` channel and the security sinks, and acknowledges the report to the user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec
import orjson
from sqlalchemy import Connection, Engine, select, update

from secmon.alerts.cases import ACTIVE, CaseStore, InvalidTransition, audit, open_key_for
from secmon.alerts.policy import CaseAction, Rule
from secmon.alerts.tables import not_me_token, support_case
from secmon.clock import wall_ms
from secmon.contract import Finding, Subject, iso_ms
from secmon.metrics import Metrics
from secmon.runtime.commit import FeedEffects
from secmon.store.db import insert_ignore
from secmon.store.findings import record_findings

if TYPE_CHECKING:
    from secmon.alerts.feed import FeedRouter
    from secmon.alerts.notify import Notifier

log = logging.getLogger(__name__)
NOT_ME_KIND = "user_reported_not_me"
NOT_ME_DETECTOR = "secmon.alerts.not_me"
_DOMAIN = b"secmon-not-me.v1."


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenError(ValueError):
    """A token that is malformed, wrongly signed or expired (``reason`` says which)."""

    def __init__(self, reason: Literal["invalid", "expired"]) -> None:
        super().__init__(reason)
        self.reason = reason


class NotMeLinks:
    """Issues and verifies "this wasn't me" links with one HMAC key."""

    def __init__(self, key: bytes, base_url: str, ttl_ms: int) -> None:
        if len(key) < 16:
            raise ValueError("the not-me signing key must be at least 16 bytes")
        self.key = key
        self.base_url = base_url
        self.ttl_ms = ttl_ms

    def sign(self, token_id: str, expires_ms: int) -> str:
        claims = _b64(orjson.dumps({"v": 1, "tid": token_id, "exp": expires_ms // 1000}))
        mac = hmac.new(self.key, _DOMAIN + claims.encode(), hashlib.sha256).digest()
        return f"{claims}.{_b64(mac)}"

    def verify(self, token: str, now_ms: int) -> str:
        """The token id of a well-signed, unexpired token; raises :class:`TokenError`."""
        if not isinstance(token, str) or len(token) > 512 or token.count(".") != 1:
            raise TokenError("invalid")
        claims, mac = token.split(".")
        want = hmac.new(self.key, _DOMAIN + claims.encode(), hashlib.sha256).digest()
        try:
            given = _unb64(mac)
            data = orjson.loads(_unb64(claims))
        except (binascii.Error, ValueError, orjson.JSONDecodeError):
            raise TokenError("invalid") from None
        if not hmac.compare_digest(want, given):
            raise TokenError("invalid")
        if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("tid"), str) \
                or not isinstance(data.get("exp"), int):  # fmt: skip
            raise TokenError("invalid")
        if data["exp"] * 1000 <= now_ms:
            raise TokenError("expired")
        return str(data["tid"])

    def issue(
        self, conn: Connection, *, dedup_key: str, account_id: str, case_id: int | None, finding_id: str | None,
        kind: str | None, now_ms: int,
    ) -> str:  # fmt: skip
        """Record a token for a message and return its link."""
        token_id = hashlib.blake2b(dedup_key.encode(), digest_size=16).hexdigest()
        expires = now_ms + self.ttl_ms
        insert_ignore(conn, not_me_token, [{"token_id": token_id, "account_id": account_id, "case_id": case_id,
                                             "finding_id": finding_id, "kind": kind, "issued_ms": now_ms,
                                             "expires_ms": expires, "used_ms": None}])  # fmt: skip
        row = conn.execute(select(not_me_token.c.expires_ms).where(not_me_token.c.token_id == token_id)).scalar_one()
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}t={self.sign(token_id, row)}"


@dataclass(frozen=True)
class RedeemResult:
    """What following a link did.  ``status``: ``accepted`` (escalated), ``used`` (already
    followed once), ``expired`` or ``invalid``.  Only ``accepted`` carries a case id; the
    endpoint should show the user the same neutral page for every status but ``accepted``."""

    status: Literal["accepted", "used", "expired", "invalid"]
    case_id: int | None = None


class NotMeService:
    """Redeems links: the function behind the wallet's "this wasn't me" endpoint."""

    def __init__(
        self, engine: Engine, links: NotMeLinks, cases: CaseStore, feed: FeedRouter, notifier: Notifier | None,
        metrics: Metrics | None = None, *, clock: Callable[[], int] = wall_ms,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.links = links
        self.cases = cases
        self.feed = feed
        self.notifier = notifier
        self.metrics = metrics
        self.clock = clock

    def redeem(self, token: str) -> RedeemResult:
        now = self.clock()
        try:
            token_id = self.links.verify(token, now)
        except TokenError as exc:
            return self._count(RedeemResult(exc.reason))
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(not_me_token)
                .where(not_me_token.c.token_id == token_id, not_me_token.c.used_ms.is_(None),
                       not_me_token.c.expires_ms > now)
                .values(used_ms=now)
                .returning(not_me_token.c.account_id, not_me_token.c.case_id, not_me_token.c.finding_id,
                           not_me_token.c.kind)
            ).first()  # fmt: skip
            if claimed is None:
                row = conn.execute(select(not_me_token).where(not_me_token.c.token_id == token_id)).first()
                status: Literal["used", "expired", "invalid"] = (
                    "invalid" if row is None else ("used" if row.used_ms is not None else "expired")
                )
                return self._count(RedeemResult(status))
            account, case_id, finding_id, kind = claimed
            actor = f"user:{account}"[:128]
            audit(
                conn,
                actor,
                "not_me.redeem",
                "not_me_token",
                token_id,
                orjson.dumps({"case_id": case_id, "finding_id": finding_id, "kind": kind}).decode(),
                now,
            )
            report = self._feed_record(token_id, account, case_id, finding_id, kind, now)
            case_id = self._escalate(conn, report, case_id, actor, now)
            report = msgspec.structs.replace(report, explanation={**report.explanation, "case_id": case_id})
            if record_findings(conn, [report], now):
                FeedEffects().apply(conn, [report], now)
                self.feed.apply(conn, report, Rule(feed=True), now)
            if self.notifier is not None:
                self.notifier.acknowledge_not_me(conn, account, case_id, token_id, now)
        log.info("not-me report accepted for case %s (token %s)", case_id, token_id[:8])
        return self._count(RedeemResult("accepted", case_id))

    def _escalate(self, conn: Connection, report: Finding, case_id: int | None, actor: str, now: int) -> int:
        """Escalate the message's case to P1 (reopening it if need be); otherwise open one."""
        store = self.cases
        if case_id is not None:
            case = conn.execute(select(support_case).where(support_case.c.id == case_id).with_for_update()).first()
            if case is not None:
                if case.status not in ACTIVE:
                    try:
                        store.change_status(conn, case, "open", actor, now, note="the user reported: this wasn't me")
                        case_id = case.id
                    except InvalidTransition:  # another case is active for the same problem: use that one
                        key = open_key_for(case.category, case.account_id, case.incident_key)
                        case_id = conn.execute(select(support_case.c.id).where(support_case.c.open_key == key)).scalar()
                if case_id is not None:
                    case = conn.execute(select(support_case).where(support_case.c.id == case_id)).one()
                    store.link(conn, case, report, CaseAction(case.category, "P1"), now, event="not_me", actor=actor)
                    return int(case.id)
        changes = store.on_finding(conn, report, CaseAction("account_security", "P1"), now)
        if changes:
            return changes[0].case_id
        key = open_key_for("account_security", report.account_id, None)
        linked = conn.execute(select(support_case.c.id).where(support_case.c.open_key == key)).scalar_one()
        return int(linked)

    @staticmethod
    def _feed_record(token_id: str, account: str, case_id: int | None, finding_id: str | None, kind: str | None,
                     now: int) -> Finding:  # fmt: skip
        fid = hashlib.blake2b(f"{NOT_ME_KIND}|{token_id}".encode(), digest_size=12).hexdigest()
        return Finding(
            finding_id=fid, kind=NOT_ME_KIND, severity="critical", account_id=account, subject=Subject(),
            first_seen=iso_ms(now), last_seen=iso_ms(now), detected_at=iso_ms(now), evidence=(),
            summary=f"The account holder reported that activity was not them ({kind or 'a security notice'}).",
            explanation={"reported_finding_id": finding_id, "reported_kind": kind, "case_id": case_id,
                         "token_id": token_id},
            detector=NOT_ME_DETECTOR,
        )  # fmt: skip

    def _count(self, result: RedeemResult) -> RedeemResult:
        if self.metrics is not None:
            self.metrics.not_me_reports.labels(result.status).inc()
        return result
