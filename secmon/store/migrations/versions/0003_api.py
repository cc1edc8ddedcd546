"""API tables: tokens (hashed), console sessions, TOTP replay state, verification attempts.

Revision ID: 0003_api
Revises: 0002_alerts
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_api"
down_revision = "0002_alerts"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("expires_ms", sa.BigInteger),
        sa.Column("revoked_ms", sa.BigInteger),
        sa.Column("last_used_ms", sa.BigInteger),
    )
    op.create_table(
        "api_session",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("roles", sa.String(128), nullable=False),
        sa.Column("token_id", sa.String(32)),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_api_session_expires", "api_session", ["expires_ms"])
    op.create_table(
        "totp_state",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("last_timecode", sa.BigInteger),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "verification_attempt",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
    )
    op.create_index("ix_verification_account_at", "verification_attempt", ["account_id", "at_ms"])
    # The findings feed and its live stream page by creation time.
    op.create_index("ix_finding_created", "finding", ["created_ms", "finding_id", "revision"])


def downgrade() -> None:
    op.drop_index("ix_finding_created", table_name="finding")
    op.drop_index("ix_verification_account_at", table_name="verification_attempt")
    op.drop_table("verification_attempt")
    op.drop_table("totp_state")
    op.drop_index("ix_api_session_expires", table_name="api_session")
    op.drop_table("api_session")
    op.drop_table("api_token")
