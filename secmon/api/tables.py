"""Tables of the API: tokens, console sessions and caller-verification state.

Created by the Alembic revision ``0003_api``.  No secret is stored in clear: tokens and
session ids are kept as SHA-256 digests of high-entropy random strings, and TOTP secrets
are not here at all (they stay in the secret store).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table

from secmon.store.schema import BigId, metadata

#: API tokens: ``smk_<token_id>_<secret>``; only ``sha256(secret)`` is kept.
api_token = Table(
    "api_token",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_ms", BigInteger),
    Column("revoked_ms", BigInteger),
    Column("last_used_ms", BigInteger),
)

#: Console sessions (cookie = random id; the row holds its digest, the principal and the CSRF token).
api_session = Table(
    "api_session",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("principal", String(128), nullable=False),
    Column("roles", String(128), nullable=False),  # comma-separated
    Column("token_id", String(32)),  # the API token it was opened with (revoking it ends the session)
    Column("csrf", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Index("ix_api_session_expires", "expires_ms"),
)

#: Per account: the last TOTP time step accepted (a code is accepted once, RFC 6238 §5.2).
totp_state = Table(
    "totp_state",
    metadata,
    Column("account_id", String(128), primary_key=True),
    Column("last_timecode", BigInteger),
    Column("updated_ms", BigInteger, nullable=False),
)

#: Every caller-verification attempt (for the rate limit; the audit log has who and why).
verification_attempt = Table(
    "verification_attempt",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(128), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),  # verified | wrong_code | replayed | not_enrolled | rate_limited
    Index("ix_verification_account_at", "account_id", "at_ms"),
)
