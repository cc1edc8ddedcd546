"""API tokens: ``smk_<id>_<secret>``, shown once, stored as ``sha256(secret)``.

The secret is 32 random bytes, so a plain SHA-256 is enough (a slow password hash protects
low-entropy secrets; this one cannot be guessed).  The id prefix lets a request find its
row with one indexed lookup, and the digests are compared in constant time.  Creating and
revoking a token writes an audit row.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, RowMapping, select, update

from secmon.alerts.cases import audit
from secmon.api.settings import ROLES
from secmon.api.tables import api_token

PREFIX = "smk_"
_FORMAT = re.compile(r"^smk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
#: ``last_used_ms`` is refreshed at most this often (not a write per request).
_TOUCH_MS = 60_000


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A token's row, without its digest."""

    token_id: str
    name: str
    role: str
    created_ms: int
    created_by: str
    expires_ms: int | None
    revoked_ms: int | None
    last_used_ms: int | None


@dataclass(frozen=True)
class NewToken:
    info: TokenInfo
    #: The plaintext, shown once to whoever created it.
    token: str


def looks_like_token(text: str) -> bool:
    return text.startswith(PREFIX)


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, *, name: str, role: str, actor: str, now_ms: int, expires_ms: int | None = None) -> NewToken:
        """Mint a token; only its digest is stored.  Audited as ``api_token.create``."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        name = name.strip()
        if not name or len(name) > 128:
            raise ValueError("name must be 1..128 characters")
        if expires_ms is not None and expires_ms <= now_ms:
            raise ValueError("expiry must be in the future")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        row = {"token_id": token_id, "name": name, "role": role, "secret_hash": digest(secret), "created_ms": now_ms,
               "created_by": actor[:128], "expires_ms": expires_ms, "revoked_ms": None, "last_used_ms": None}  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(api_token.insert().values(**row))
            audit(conn, actor, "api_token.create", "api_token", token_id,
                  orjson.dumps({"name": name, "role": role, "expires_ms": expires_ms}).decode(), now_ms)  # fmt: skip
        return NewToken(_info(row), f"{PREFIX}{token_id}_{secret}")

    def verify(self, token: str, now_ms: int) -> TokenInfo | None:
        """The token's row if it is well-formed, known, unrevoked and unexpired."""
        m = _FORMAT.match(token)
        if m is None:
            return None
        token_id, secret = m.groups()
        with self.engine.connect() as conn:
            row = conn.execute(select(api_token).where(api_token.c.token_id == token_id)).first()
        # Compare even when the row is missing, so timing does not tell which ids exist.
        want = row.secret_hash if row is not None else "0" * 64
        ok = hmac.compare_digest(want, digest(secret))
        if row is None or not ok or row.revoked_ms is not None:
            return None
        if row.expires_ms is not None and row.expires_ms <= now_ms:
            return None
        if row.last_used_ms is None or row.last_used_ms < now_ms - _TOUCH_MS:
            with self.engine.begin() as conn:
                conn.execute(update(api_token).where(api_token.c.token_id == token_id).values(last_used_ms=now_ms))
        return _info(row._mapping)

    def active(self, token_id: str, now_ms: int) -> bool:
        """Whether a token is still valid (a console session ends with its token)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(api_token.c.revoked_ms, api_token.c.expires_ms)
                               .where(api_token.c.token_id == token_id)).first()  # fmt: skip
        return row is not None and row.revoked_ms is None and (row.expires_ms is None or row.expires_ms > now_ms)

    def list(self) -> list[TokenInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_token).order_by(api_token.c.created_ms, api_token.c.token_id)).all()
        return [_info(r._mapping) for r in rows]

    def revoke(self, token_id: str, *, actor: str, now_ms: int) -> bool:
        """Revoke a token (idempotent); False when there is no such token.  Audited."""
        with self.engine.begin() as conn:
            found = conn.execute(select(api_token.c.revoked_ms).where(api_token.c.token_id == token_id)).first()
            if found is None:
                return False
            if found.revoked_ms is None:
                conn.execute(update(api_token).where(api_token.c.token_id == token_id).values(revoked_ms=now_ms))
                audit(conn, actor, "api_token.revoke", "api_token", token_id, "{}", now_ms)
        return True

    def revoke_named(self, name: str, *, actor: str, now_ms: int) -> int:
        """Revoke every active token with this name (the demo replaces its token each start)."""
        with self.engine.connect() as conn:
            ids = [r.token_id for r in conn.execute(
                select(api_token.c.token_id).where(api_token.c.name == name, api_token.c.revoked_ms.is_(None)))]  # fmt: skip
        for token_id in ids:
            self.revoke(token_id, actor=actor, now_ms=now_ms)
        return len(ids)


def _info(r: Mapping[str, Any] | RowMapping) -> TokenInfo:
    return TokenInfo(r["token_id"], r["name"], r["role"], r["created_ms"], r["created_by"], r["expires_ms"],
                     r["revoked_ms"], r["last_used_ms"])  # fmt: skip
