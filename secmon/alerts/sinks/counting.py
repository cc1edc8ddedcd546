"""A sink wrapper counting a user-message channel's outcomes into ``secmon_notifications``."""

from __future__ import annotations

from collections.abc import Sequence

from secmon.alerts.sinks.base import Delivered, Failed, Outcome, Sink
from secmon.metrics import Metrics
from secmon.store.outbox import OutboxItem


class CountingSink(Sink):
    def __init__(self, inner: Sink, metrics: Metrics) -> None:
        self.inner = inner
        self.channel = inner.channel
        self.ordered = inner.ordered
        self.metrics = metrics

    def deliver(self, items: Sequence[OutboxItem]) -> list[Outcome]:
        outcomes = self.inner.deliver(items)
        counts = {"sent": 0, "failed": 0, "retry": 0}
        for o in outcomes:
            counts["sent" if isinstance(o, Delivered) else "failed" if isinstance(o, Failed) else "retry"] += 1
        for outcome, n in counts.items():
            if n:
                self.metrics.notifications.labels(self.channel, outcome).inc(n)
        return outcomes

    def reconcile(self, items: Sequence[OutboxItem]) -> set[int]:
        return self.inner.reconcile(items)

    def close(self) -> None:
        self.inner.close()
