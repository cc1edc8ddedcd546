"""Tables of the action layer, on the shared ``secmon.store.schema.metadata``.

Created by the Alembic revision ``0002_alerts``.  Times are epoch milliseconds (wall clock:
SLAs and budgets are about when people are woken, not about event time).  ``support_case``
has one row per case; ``open_key`` is set while a case is active and is unique, so two
workers can never open two active cases for one (account, category) or one incident.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from secmon.store.schema import BigId, metadata

support_case = Table(
    "support_case",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("category", String(32), nullable=False),
    Column("priority", String(2), nullable=False),
    Column("status", String(16), nullable=False),  # new | open | pending_user | resolved | closed
    Column("account_id", String(128)),  # null for a platform incident
    Column("incident_key", String(256)),  # e.g. wdfail:<reason>:<network>
    Column("open_key", String(400), unique=True),  # "<category>|<account or incident>" while active
    Column("parent_id", BigInteger),  # the platform incident an account case is part of
    Column("title", Text, nullable=False),
    Column("first_kind", String(64), nullable=False),
    Column("assignee", String(128)),
    Column("opened_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("due_ms", BigInteger, nullable=False),
    Column("paused_ms", BigInteger),  # SLA clock paused since (pending_user)
    Column("breached_ms", BigInteger),  # first SLA breach
    Column("breach_due_ms", BigInteger),  # the due time the last recorded breach was about
    Column("resolved_ms", BigInteger),
    Column("closed_ms", BigInteger),
    Column("reopened", Integer, nullable=False, default=0),
    Column("findings", Integer, nullable=False, default=0),
    Index("ix_case_status_due", "status", "due_ms"),
    Index("ix_case_account", "account_id"),
    Index("ix_case_opened", "opened_ms"),
    Index("ix_case_incident", "incident_key"),
)

#: Findings linked to a case (one row per finding, its latest revision's state).
case_finding = Table(
    "case_finding",
    metadata,
    Column("case_id", BigInteger, primary_key=True),
    Column("finding_id", String(32), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("account_id", String(128)),
    Column("incident_key", String(256)),
    Column("summary", Text, nullable=False),
    Column("linked_ms", BigInteger, nullable=False),
    Column("resolved_ms", BigInteger),
    Index("ix_case_finding_finding", "finding_id"),
    Index("ix_case_finding_incident", "incident_key"),
)

#: The case timeline: what happened and who did it (findings, status changes, notes …).
case_event = Table(
    "case_event",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("case_id", BigInteger, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("type", String(32), nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
    Index("ix_case_event_case", "case_id", "id"),
)

#: Every write to a case, by whom (``secmon`` for automatic ones, ``user:<account>`` for a
#: "this wasn't me" report, the console user otherwise).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(128), nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
    Index("ix_audit_object", "object_type", "object_id"),
    Index("ix_audit_at", "at_ms"),
)

#: What the action layer knows of an account: its locale, from the latest ``account.snapshot``.
account_profile = Table(
    "account_profile",
    metadata,
    Column("account_id", String(128), primary_key=True),
    Column("locale", String(35), nullable=False),
    Column("seen_ms", BigInteger, nullable=False),  # event time of the snapshot
    Column("updated_ms", BigInteger, nullable=False),
)

#: A message's dedup key is kept to this many characters (the outbox's column is as wide).
DEDUP_KEY_LEN = 256

#: User messages, for the budgets and digests (the content itself is in the outbox).
user_notification = Table(
    "user_notification",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dedup_key", String(DEDUP_KEY_LEN), nullable=False, unique=True),
    Column("account_id", String(128), nullable=False),
    Column("template", String(64), nullable=False),
    Column("kind", String(64)),
    Column("severity", String(16)),
    Column("case_id", BigInteger),
    Column("finding_id", String(32)),
    Column("locale", String(35), nullable=False),
    Column("status", String(16), nullable=False),  # sent | held | digested | digest
    Column("created_ms", BigInteger, nullable=False),
    Column("digest_key", String(256)),
    Index("ix_notification_account", "account_id", "created_ms"),
    Index("ix_notification_status", "status", "account_id"),
)

#: "This wasn't me" tokens: issued with a message, redeemable once before ``expires_ms``.
not_me_token = Table(
    "not_me_token",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("account_id", String(128), nullable=False),
    Column("case_id", BigInteger),
    Column("finding_id", String(32)),
    Column("kind", String(64)),
    Column("issued_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger),
)

#: The alert each finding has on Alertmanager (for the periodic re-send and the resolution).
alert_state = Table(
    "alert_state",
    metadata,
    Column("finding_id", String(32), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("alert", Text, nullable=False),  # JSON: labels, annotations, startsAt, generatorURL
    Column("status", String(16), nullable=False),  # active | resolved
    Column("updated_ms", BigInteger, nullable=False),  # last new revision
    Column("last_sent_ms", BigInteger, nullable=False),  # last enqueue
    Index("ix_alert_state_due", "status", "last_sent_ms"),
)
