"""The batch commit: one database transaction per poll batch, before offsets move.

It writes, atomically: the finding gate (new revisions only), every effect of those new
findings (feed rows, and whatever the action layer's :class:`Effects` add: cases,
notifications), the dead letters, and — when due — the task checkpoints (state + offsets).
Only after it returns are Kafka offsets committed, so a crash at any point replays the batch
and the gate turns the replay's findings into no-ops.  With an :class:`InlineFeed`, the
feed's rows are sent right after the commit and settled in the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection, Engine

from secmon.contract import Finding, encode_finding
from secmon.engine.deadletter import DeadLetter, encode_dead_letter
from secmon.engine.task import TaskChanges
from secmon.runtime.inline_feed import InlineFeed
from secmon.store.checkpoints import CheckpointStore
from secmon.store.findings import record_findings
from secmon.store.outbox import OutboxMessage, enqueue

FINDINGS_CHANNEL = "findings"
DLQ_CHANNEL = "dlq"


class Effects(Protocol):
    """Something the new findings cause, written in the batch transaction."""

    def apply(self, conn: Connection, findings: Sequence[Finding], now_ms: int) -> None: ...


class FeedEffects:
    """Every new finding revision goes to the security feed topic (``secmon.findings``):
    sent by the worker right after the commit when it has an :class:`InlineFeed`, by the
    dispatcher otherwise."""

    def __init__(self, inline: InlineFeed | None = None) -> None:
        self._enqueue = inline.enqueue if inline is not None else enqueue

    def apply(self, conn: Connection, findings: Sequence[Finding], now_ms: int) -> None:
        self._enqueue(
            conn,
            [
                OutboxMessage(
                    channel=FINDINGS_CHANNEL,
                    dedup_key=f"{f.finding_id}:{f.revision}",
                    payload=encode_finding(f),
                    msg_key=f.finding_id.encode(),
                )
                for f in findings
            ],
            now_ms,
        )


def dead_letter_messages(dead: Sequence[DeadLetter]) -> list[OutboxMessage]:
    return [
        OutboxMessage(
            channel=DLQ_CHANNEL,
            dedup_key=dl.dedup_key(),
            payload=encode_dead_letter(dl),
            msg_key=dl.key.encode() if dl.key is not None else None,
        )
        for dl in dead
    ]


class BatchCommitter:
    def __init__(
        self,
        engine: Engine,
        checkpoints: CheckpointStore,
        effects: Sequence[Effects],
        inline: InlineFeed | None = None,
    ) -> None:
        """``inline``: sends the feed's rows after each commit and settles their outcomes in
        the next one (give the same one to :class:`FeedEffects`)."""
        self.engine = engine
        self.checkpoints = checkpoints
        self.effects = list(effects)
        self.inline = inline
        self._enqueue = inline.enqueue if inline is not None else enqueue

    def has_outcomes(self) -> bool:
        """Whether inline sends have outcomes to write (worth a commit on their own)."""
        return self.inline is not None and self.inline.pending_outcomes()

    def commit(
        self,
        findings: Sequence[Finding],
        dead_letters: Sequence[DeadLetter],
        changes: Sequence[TaskChanges] | None,
        now_ms: int,
    ) -> list[Finding]:
        """Make the batch durable; returns the findings that were new (not replays)."""
        inline = self.inline
        if not findings and not dead_letters and not changes and not self.has_outcomes():
            return []
        settled = (0, 0)
        try:
            with self.engine.begin() as conn:
                if inline is not None:
                    settled = inline.settle(conn)
                new = record_findings(conn, findings, now_ms)
                if new:
                    for effect in self.effects:
                        effect.apply(conn, new, now_ms)
                if dead_letters:
                    self._enqueue(conn, dead_letter_messages(dead_letters), now_ms)
                if changes:
                    self.checkpoints.save(conn, changes, now_ms)
        except BaseException:
            if inline is not None:
                inline.discard_staged()
            raise
        if inline is not None:
            inline.settled(settled)
            inline.send_staged()
        return new
