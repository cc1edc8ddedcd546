"""User-message channels count their outcomes into secmon_notifications."""

from __future__ import annotations

from collections.abc import Sequence

from secmon.alerts.sinks.base import DELIVERED, Failed, Outcome, Retry, Sink
from secmon.alerts.sinks.counting import CountingSink
from secmon.metrics import Metrics
from secmon.store.outbox import OutboxItem


class Scripted(Sink):
    channel = "notify.push"

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes

    def deliver(self, items: Sequence[OutboxItem]) -> list[Outcome]:
        return self.outcomes[: len(items)]


def test_outcomes_are_counted_by_channel() -> None:
    metrics = Metrics()
    items = [OutboxItem(i, "notify.push", f"k{i}", None, b"{}", 0, 0) for i in range(4)]
    sink = CountingSink(Scripted([DELIVERED, DELIVERED, Retry("x"), Failed("y")]), metrics)
    assert len(sink.deliver(items)) == 4
    value = metrics.registry.get_sample_value
    assert value("secmon_notifications_total", {"channel": "notify.push", "outcome": "sent"}) == 2
    assert value("secmon_notifications_total", {"channel": "notify.push", "outcome": "retry"}) == 1
    assert value("secmon_notifications_total", {"channel": "notify.push", "outcome": "failed"}) == 1
    assert sink.channel == "notify.push" and not sink.ordered
