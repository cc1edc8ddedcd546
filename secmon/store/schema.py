"""Tables of the streaming core: checkpoints, state, the finding gate and the outbox.

Machine timestamps are epoch milliseconds (``BigInteger``): the same on SQLite and
PostgreSQL, cheap to compare, no time-zone surprises.  The action layer's tables (cases,
notifications, audit) live in ``secmon/alerts`` and share this ``metadata``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: Autoincrementing 64-bit ids that also work on SQLite (which wants INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")

task_checkpoint = Table(
    "task_checkpoint",
    metadata,
    Column("app_id", String(64), primary_key=True),
    Column("task_id", String(128), primary_key=True),
    Column("meta", LargeBinary, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

task_state = Table(
    "task_state",
    metadata,
    Column("app_id", String(64), primary_key=True),
    Column("task_id", String(128), primary_key=True),
    Column("detector", String(64), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

#: Every finding record (one row per revision).  The primary key is the exactly-once gate:
#: a finding replayed after a restart is recognised here and causes no second effect.
finding = Table(
    "finding",
    metadata,
    Column("finding_id", String(32), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("account_id", String(128)),
    Column("detected_ms", BigInteger, nullable=False),
    Column("record", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_finding_kind_detected", "kind", "detected_ms"),
    Index("ix_finding_account", "account_id"),
    Index("ix_finding_detected", "detected_ms"),
)

#: Outgoing messages, written in the batch transaction and delivered by the dispatcher.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("dedup_key", String(256), nullable=False),
    Column("msg_key", LargeBinary),
    Column("payload", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),  # pending | inflight | sent | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("claimed_ms", BigInteger),
    Column("claimed_by", String(128)),
    Column("sent_ms", BigInteger),
    Column("last_error", Text),
    UniqueConstraint("channel", "dedup_key", name="uq_outbox_channel_dedup"),
    Index("ix_outbox_due", "status", "channel", "next_attempt_ms"),
)
