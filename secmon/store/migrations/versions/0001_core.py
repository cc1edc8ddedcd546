"""Core tables: task checkpoints and state, the finding gate, the outbox.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "task_checkpoint",
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(128), primary_key=True),
        sa.Column("meta", sa.LargeBinary, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "task_state",
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(128), primary_key=True),
        sa.Column("detector", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "finding",
        sa.Column("finding_id", sa.String(32), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(128)),
        sa.Column("detected_ms", sa.BigInteger, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_finding_kind_detected", "finding", ["kind", "detected_ms"])
    op.create_index("ix_finding_account", "finding", ["account_id"])
    op.create_index("ix_finding_detected", "finding", ["detected_ms"])
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("dedup_key", sa.String(256), nullable=False),
        sa.Column("msg_key", sa.LargeBinary),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("claimed_ms", sa.BigInteger),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("sent_ms", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("channel", "dedup_key", name="uq_outbox_channel_dedup"),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "channel", "next_attempt_ms"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("finding")
    op.drop_table("task_state")
    op.drop_table("task_checkpoint")
