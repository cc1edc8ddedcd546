"""The action layer's batch effect: what new findings do, inside the batch transaction.

For each new finding revision, in order: the policy picks its rule; cases are opened,
joined or resolved; the user is told (after the case writes, so a message names its case);
the feed sinks get their rows.  Everything is written through the connection the
:class:`~secmon.runtime.commit.BatchCommitter` passes in, so it commits atomically with the
finding gate and the offsets — or not at all, and the replayed batch does it once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from sqlalchemy import Connection

from secmon.alerts.cases import CaseStore
from secmon.alerts.feed import FeedRouter
from secmon.alerts.notify import Notifier
from secmon.alerts.policy import Policy
from secmon.contract import Finding


class ActionEffects:
    """Implements :class:`secmon.runtime.commit.Effects` for cases, messages and the feed."""

    def __init__(self, policy: Policy, cases: CaseStore | None, notifier: Notifier | None, feed: FeedRouter) -> None:
        self.policy = policy
        self.cases = cases
        self.notifier = notifier
        self.feed = feed

    def apply(self, conn: Connection, findings: Sequence[Finding], now_ms: int) -> None:
        # A problem that opened and cleared within one batch (a deposit credited just after
        # its SLA, seen late) is recorded, but the user is not told "delayed" and "arrived"
        # in the same breath.
        opened = {f.finding_id for f in findings if f.status == "open"}
        settled = {f.finding_id for f in findings if f.status == "resolved"} & opened
        batched = self.cases.batched_timeline(conn) if self.cases is not None else contextlib.nullcontext()
        with batched:
            self._apply(conn, findings, settled, now_ms)

    def _apply(self, conn: Connection, findings: Sequence[Finding], settled: set[str], now_ms: int) -> None:
        for f in findings:
            rule = self.policy.match(f)
            changes = self.cases.on_finding(conn, f, rule.case, now_ms) if self.cases is not None else []
            if self.notifier is not None and f.finding_id not in settled:
                self.notifier.on_finding(conn, f, rule, changes, now_ms)
            self.feed.apply(conn, f, rule, now_ms)
