"""Action layer tables: support cases, their findings and timeline, the audit log, account
profiles (locale), user notifications (budgets, digests), "this wasn't me" tokens and the
Alertmanager alert state.

Revision ID: 0002_alerts
Revises: 0001_core
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_alerts"
down_revision = "0001_core"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "support_case",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(128)),
        sa.Column("incident_key", sa.String(256)),
        sa.Column("open_key", sa.String(400), unique=True),
        sa.Column("parent_id", sa.BigInteger),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("first_kind", sa.String(64), nullable=False),
        sa.Column("assignee", sa.String(128)),
        sa.Column("opened_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("due_ms", sa.BigInteger, nullable=False),
        sa.Column("paused_ms", sa.BigInteger),
        sa.Column("breached_ms", sa.BigInteger),
        sa.Column("breach_due_ms", sa.BigInteger),
        sa.Column("resolved_ms", sa.BigInteger),
        sa.Column("closed_ms", sa.BigInteger),
        sa.Column("reopened", sa.Integer, nullable=False, server_default="0"),
        sa.Column("findings", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_case_status_due", "support_case", ["status", "due_ms"])
    op.create_index("ix_case_account", "support_case", ["account_id"])
    op.create_index("ix_case_opened", "support_case", ["opened_ms"])
    op.create_index("ix_case_incident", "support_case", ["incident_key"])
    op.create_table(
        "case_finding",
        sa.Column("case_id", sa.BigInteger, primary_key=True),
        sa.Column("finding_id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("account_id", sa.String(128)),
        sa.Column("incident_key", sa.String(256)),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("linked_ms", sa.BigInteger, nullable=False),
        sa.Column("resolved_ms", sa.BigInteger),
    )
    op.create_index("ix_case_finding_finding", "case_finding", ["finding_id"])
    op.create_index("ix_case_finding_incident", "case_finding", ["incident_key"])
    op.create_table(
        "case_event",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.BigInteger, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_case_event_case", "case_event", ["case_id", "id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_object", "audit_log", ["object_type", "object_id"])
    op.create_index("ix_audit_at", "audit_log", ["at_ms"])
    op.create_table(
        "account_profile",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("seen_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "user_notification",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(256), nullable=False, unique=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64)),
        sa.Column("severity", sa.String(16)),
        sa.Column("case_id", sa.BigInteger),
        sa.Column("finding_id", sa.String(32)),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("digest_key", sa.String(256)),
    )
    op.create_index("ix_notification_account", "user_notification", ["account_id", "created_ms"])
    op.create_index("ix_notification_status", "user_notification", ["status", "account_id"])
    op.create_table(
        "not_me_token",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("case_id", sa.BigInteger),
        sa.Column("finding_id", sa.String(32)),
        sa.Column("kind", sa.String(64)),
        sa.Column("issued_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("used_ms", sa.BigInteger),
    )
    op.create_table(
        "alert_state",
        sa.Column("finding_id", sa.String(32), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("alert", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("last_sent_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alert_state_due", "alert_state", ["status", "last_sent_ms"])


def downgrade() -> None:
    for name in ("alert_state", "not_me_token", "user_notification", "account_profile", "audit_log",
                 "case_event", "case_finding", "support_case"):
        op.drop_table(name)
