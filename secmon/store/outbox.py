"""The transactional outbox: messages written with the batch, delivered by the dispatcher.

Rows are unique per ``(channel, dedup_key)``: enqueueing the same message twice (a replay
after a restart) is a no-op.  Dispatchers *claim* due rows (``pending`` → ``inflight``);
on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` so several workers never claim the same row;
SQLite serialises writers (immediate transactions), which serves the workers of one host.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, or_, select, update

from secmon.store.db import insert_ignore
from secmon.store.schema import outbox

PENDING, INFLIGHT, SENT, DEAD = "pending", "inflight", "sent", "dead"


@dataclass(frozen=True)
class OutboxMessage:
    """A message to enqueue.  ``dedup_key`` identifies it within its channel."""

    channel: str
    dedup_key: str
    payload: bytes
    msg_key: bytes | None = None


@dataclass(frozen=True)
class OutboxItem:
    """A claimed row, handed to a sink."""

    id: int
    channel: str
    dedup_key: str
    msg_key: bytes | None
    payload: bytes
    attempts: int
    created_ms: int
    claimed_ms: int | None = None


def enqueue(conn, messages: Sequence[OutboxMessage], now_ms: int) -> int:  # type: ignore[no-untyped-def]
    """Insert messages (ignoring ones already there); returns how many were new."""
    if not messages:
        return 0
    return len(insert_ignore(conn, outbox, _rows(messages, now_ms, status=PENDING), returning=(outbox.c.id,)))


def enqueue_claimed(conn, messages: Sequence[OutboxMessage], now_ms: int, worker_id: str) -> list[OutboxItem]:  # type: ignore[no-untyped-def]
    """Insert messages already claimed by ``worker_id`` (in flight), for a sender that delivers
    them as soon as the transaction commits; returns the new rows as items (a message already
    there, from a replayed batch, is skipped)."""
    if not messages:
        return []
    by_key = {(m.channel, m.dedup_key): m for m in messages}
    rows = _rows(by_key.values(), now_ms, status=INFLIGHT, claimed_ms=now_ms, claimed_by=worker_id)
    inserted = insert_ignore(conn, outbox, rows, returning=(outbox.c.id, outbox.c.channel, outbox.c.dedup_key))
    items = []
    for row_id, channel, dedup_key in inserted:
        m = by_key[(channel, dedup_key)]
        items.append(OutboxItem(row_id, channel, dedup_key, m.msg_key, m.payload, 0, now_ms, now_ms))
    items.sort(key=lambda i: i.id)
    return items


def _rows(messages: Iterable[OutboxMessage], now_ms: int, **status: object) -> list[dict[str, object]]:
    """Outbox rows for new messages, due now; ``status`` and claim columns from the caller."""
    return [
        {
            "channel": m.channel,
            "dedup_key": m.dedup_key,
            "msg_key": m.msg_key,
            "payload": m.payload,
            "attempts": 0,
            "next_attempt_ms": now_ms,
            "created_ms": now_ms,
            **status,
        }
        for m in messages
    ]


def mark_sent_in(conn, ids: Sequence[int], now_ms: int) -> None:  # type: ignore[no-untyped-def]
    """:meth:`Outbox.mark_sent` inside the caller's transaction."""
    if ids:
        conn.execute(
            update(outbox).where(outbox.c.id.in_(list(ids))).values(status=SENT, sent_ms=now_ms, last_error=None)
        )


def release_in(conn, ids: Sequence[int], error: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Put in-flight rows back to pending (their delivery is not confirmed, or failed:
    ``error``), inside the caller's transaction; the dispatcher retries them."""
    if ids:
        values: dict[str, object] = {"status": PENDING, "claimed_ms": None, "claimed_by": None}
        if error is not None:
            values["last_error"] = error[:2000]
        conn.execute(
            update(outbox).where(and_(outbox.c.id.in_(list(ids)), outbox.c.status == INFLIGHT)).values(**values)
        )


_COLS = (
    outbox.c.id,
    outbox.c.channel,
    outbox.c.dedup_key,
    outbox.c.msg_key,
    outbox.c.payload,
    outbox.c.attempts,
    outbox.c.created_ms,
    outbox.c.claimed_ms,
)


def _item(row) -> OutboxItem:  # type: ignore[no-untyped-def]
    return OutboxItem(
        id=row.id,
        channel=row.channel,
        dedup_key=row.dedup_key,
        msg_key=row.msg_key,
        payload=row.payload,
        attempts=row.attempts,
        created_ms=row.created_ms,
        claimed_ms=row.claimed_ms,
    )


class Outbox:
    """Claiming and settling outbox rows for one dispatcher (``worker_id``)."""

    def __init__(self, engine: Engine, worker_id: str) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self._pg = engine.dialect.name == "postgresql"

    def claim(self, channel: str, limit: int, now_ms: int, *, ordered: bool = False) -> list[OutboxItem]:
        """Take up to ``limit`` due rows of a channel, oldest first, marking them in flight.

        ``ordered``: only the head of the channel — the due rows before the first pending row
        that is not yet due — so no row overtakes an older one waiting for its retry."""
        if ordered:
            return self._claim_head(channel, limit, now_ms)
        due = (
            select(outbox.c.id)
            .where(outbox.c.status == PENDING, outbox.c.channel == channel, outbox.c.next_attempt_ms <= now_ms)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self._pg:
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(status=INFLIGHT, claimed_ms=now_ms, claimed_by=self.worker_id)
            .returning(*_COLS)
        )
        with self.engine.begin() as conn:
            items = [_item(r) for r in conn.execute(stmt)]
        items.sort(key=lambda i: i.id)
        return items

    def _claim_head(self, channel: str, limit: int, now_ms: int) -> list[OutboxItem]:
        head = (
            select(outbox.c.id, outbox.c.next_attempt_ms)
            .where(outbox.c.status == PENDING, outbox.c.channel == channel)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self._pg:
            head = head.with_for_update()  # no SKIP LOCKED: order matters more than parallelism
        with self.engine.begin() as conn:
            ids = []
            for row_id, next_ms in conn.execute(head):
                if next_ms > now_ms:
                    break
                ids.append(row_id)
            if not ids:
                return []
            rows = conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(ids), outbox.c.status == PENDING)
                .values(status=INFLIGHT, claimed_ms=now_ms, claimed_by=self.worker_id)
                .returning(*_COLS)
            )
            items = [_item(r) for r in rows]
        items.sort(key=lambda i: i.id)
        return items

    def defer(self, ids: Sequence[int], next_attempt_ms: int, error: str) -> None:
        """Put in-flight rows back to pending until ``next_attempt_ms`` without counting an
        attempt (the peer was down, or an older row of an ordered channel failed)."""
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(list(ids)))
                .values(status=PENDING, next_attempt_ms=next_attempt_ms, last_error=error[:2000],
                        claimed_ms=None, claimed_by=None)
            )  # fmt: skip

    def mark_sent(self, ids: Sequence[int], now_ms: int) -> None:
        if not ids:
            return
        with self.engine.begin() as conn:
            mark_sent_in(conn, ids, now_ms)

    def mark_retry(self, item: OutboxItem, error: str, next_attempt_ms: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == item.id)
                .values(
                    status=PENDING,
                    attempts=item.attempts + 1,
                    next_attempt_ms=next_attempt_ms,
                    last_error=error[:2000],
                    claimed_ms=None,
                    claimed_by=None,
                )
            )

    def mark_dead(self, item: OutboxItem, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == item.id)
                .values(status=DEAD, attempts=item.attempts + 1, last_error=error[:2000])
            )

    def stale_inflight(
        self, channel: str, claimed_before_ms: int, limit: int = 5000, *, mine: bool = False
    ) -> list[OutboxItem]:
        """Rows left in flight by a dispatcher that died (claimed before the lease ended);
        ``mine``: also every row claimed under this worker id, whenever (at start-up, a
        restarted worker with the same id has nothing in flight yet)."""
        stale = outbox.c.claimed_ms < claimed_before_ms
        if mine:
            stale = or_(stale, outbox.c.claimed_by == self.worker_id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*_COLS)
                .where(outbox.c.status == INFLIGHT, outbox.c.channel == channel, stale)
                .order_by(outbox.c.id)
                .limit(limit)
            )
            return [_item(r) for r in rows]

    def release(self, ids: Sequence[int]) -> None:
        """Put in-flight rows back to pending (their delivery is not confirmed)."""
        if not ids:
            return
        with self.engine.begin() as conn:
            release_in(conn, ids)

    def depth(self) -> dict[str, tuple[int, int | None]]:
        """Per channel: undelivered rows (pending or in flight) and the oldest one's time."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.channel, func.count(), func.min(outbox.c.created_ms))
                .where(outbox.c.status.in_((PENDING, INFLIGHT)))
                .group_by(outbox.c.channel)
            )
            return {r[0]: (int(r[1]), r[2]) for r in rows}

    def counts(self) -> dict[tuple[str, str], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.channel, outbox.c.status, func.count()).group_by(outbox.c.channel, outbox.c.status)
            )
            return {(r[0], r[1]): int(r[2]) for r in rows}
