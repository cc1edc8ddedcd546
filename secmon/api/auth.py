"""Who is calling: API tokens, OIDC bearer JWTs, and console sessions.

* ``Authorization: Bearer smk_…`` — an API token (:mod:`secmon.api.tokens`), one role each;
* ``Authorization: Bearer <JWT>`` — an OIDC access/ID token (:mod:`secmon.api.oidc`);
* the ``secmon_session`` cookie — a console session opened by pasting either of the above on
  the log-in page.  The cookie is a random id (only its SHA-256 is stored), ``HttpOnly``,
  ``SameSite=Strict``; the session ends at its TTL, at the JWT's expiry, or when the API
  token it came from is revoked.  Writes made with the cookie must carry the session's CSRF
  token (form field or ``X-CSRF-Token`` header).

:data:`PERMISSIONS` is the one place that says which role may do what; routes name a
permission, never a role.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy import Engine, delete, insert, select

from secmon.alerts.cases import audit
from secmon.api.oidc import OidcError, OidcVerifier
from secmon.api.settings import ApiSettings
from secmon.api.tables import api_session
from secmon.api.tokens import TokenStore, looks_like_token

SESSION_COOKIE = "secmon_session"
ALL_ROLES = frozenset({"support_agent", "security_analyst", "admin"})
#: permission → the roles that have it.
PERMISSIONS: dict[str, frozenset[str]] = {
    "cases.read": ALL_ROLES,
    "cases.comment": ALL_ROLES,
    "cases.work": frozenset({"support_agent", "admin"}),  # assign, change status
    "cases.priority": frozenset({"security_analyst", "admin"}),
    "findings.read": frozenset({"security_analyst", "admin"}),
    "callers.verify": frozenset({"support_agent", "admin"}),
    "audit.read": frozenset({"security_analyst", "admin"}),
    "tokens.manage": frozenset({"admin"}),
    "stats.read": ALL_ROLES,
}
#: Roles that see raw account ids, IPs and evidence; everyone else sees masked views.
RAW_ROLES = frozenset({"security_analyst", "admin"})


class AuthError(Exception):
    """Authentication failed; ``reason`` is safe to return (it never echoes the credential)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    #: The audit-log actor: ``token:<name>`` or ``oidc:<name>``.
    actor: str
    roles: frozenset[str]
    via: Literal["token", "oidc"]
    token_id: str | None = None
    #: When the credential stops being valid (JWT ``exp``, token expiry, session end).
    expires_ms: int | None = None
    #: Set for console sessions: the CSRF token forms must echo.
    csrf: str | None = None
    session_hash: str | None = None

    def can(self, permission: str) -> bool:
        return bool(self.roles & PERMISSIONS[permission])

    @property
    def sees_raw(self) -> bool:
        return bool(self.roles & RAW_ROLES)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Authenticator:
    def __init__(self, engine: Engine, settings: ApiSettings, tokens: TokenStore, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.settings = settings
        self.tokens = tokens
        self.oidc = OidcVerifier(settings.oidc) if settings.oidc.enabled else None
        self.clock = clock

    def bearer(self, credential: str) -> Principal:
        """Authenticate an API token or an OIDC JWT; raises :class:`AuthError`."""
        now = self.clock()
        credential = credential.strip()
        if looks_like_token(credential):
            info = self.tokens.verify(credential, now)
            if info is None:
                raise AuthError("invalid or revoked API token")
            return Principal(f"token:{info.name}", frozenset({info.role}), "token", info.token_id, info.expires_ms)
        if self.oidc is None:
            raise AuthError("invalid credential")
        try:
            ident = self.oidc.verify(credential, now)
        except OidcError as exc:
            raise AuthError(str(exc)) from None
        return Principal(f"oidc:{ident.name}"[:128], ident.roles, "oidc", None, ident.expires_ms)

    # -- console sessions ----------------------------------------------------------------
    def open_session(self, principal: Principal) -> tuple[str, Principal]:
        """A new session for ``principal``: the cookie value and the session's principal."""
        now = self.clock()
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        expires = now + self.settings.session_ttl_ms
        if principal.expires_ms is not None:
            expires = min(expires, principal.expires_ms)
        with self.engine.begin() as conn:
            conn.execute(delete(api_session).where(api_session.c.expires_ms <= now))
            conn.execute(insert(api_session).values(
                session_hash=_sha(cookie), principal=principal.actor, roles=",".join(sorted(principal.roles)),
                token_id=principal.token_id, csrf=csrf, created_ms=now, expires_ms=expires))  # fmt: skip
            audit(conn, principal.actor, "session.login", "api_session", _sha(cookie)[:16], "{}", now)
        return cookie, replace(principal, expires_ms=expires, csrf=csrf, session_hash=_sha(cookie))

    def session(self, cookie: str) -> Principal | None:
        """The principal of a live session cookie, or None."""
        if not cookie or len(cookie) > 100:
            return None
        now = self.clock()
        with self.engine.connect() as conn:
            row = conn.execute(select(api_session).where(api_session.c.session_hash == _sha(cookie))).first()
        if row is None or row.expires_ms <= now:
            return None
        if row.token_id is not None and not self.tokens.active(row.token_id, now):
            return None
        via: Literal["token", "oidc"] = "token" if row.token_id is not None else "oidc"
        return Principal(row.principal, frozenset(row.roles.split(",")), via, row.token_id, row.expires_ms, row.csrf,
                         row.session_hash)  # fmt: skip

    def close_session(self, principal: Principal) -> None:
        if principal.session_hash is None:
            return
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(delete(api_session).where(api_session.c.session_hash == principal.session_hash))
            audit(conn, principal.actor, "session.logout", "api_session", principal.session_hash[:16], "{}", now)


def csrf_ok(principal: Principal, given: str | None) -> bool:
    """Whether a cookie-authenticated write carries its session's CSRF token."""
    return principal.csrf is not None and given is not None and hmac.compare_digest(principal.csrf, given)
