"""The Alertmanager sink: ``POST /api/v2/alerts``, in order, ``endsAt`` set at send time.

An active alert is sent with ``endsAt = now + 4 × resend_interval`` (Prometheus' rule): if
secmon stops re-sending it, Alertmanager resolves it by itself; a resolved one carries the
``endsAt`` the router gave it.  Rows are delivered in enqueue order (``ordered``), so a
delayed re-send never overtakes the resolution.  A batch goes as one request; if
Alertmanager rejects it (400), the alerts are sent one by one so only the bad one fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from secmon.alerts.sinks.base import Failed, Outcome, Sink
from secmon.alerts.sinks.http import outcome_of, post, unreachable
from secmon.clock import wall_ms
from secmon.contract import iso_ms, parse_ts_ms
from secmon.store.outbox import OutboxItem


class AlertmanagerSink(Sink):
    ordered = True

    def __init__(
        self,
        channel: str,
        base_url: str,
        *,
        resend_interval_ms: int,
        timeout_s: float = 5.0,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.channel = channel
        self.url = base_url.rstrip("/") + "/api/v2/alerts"
        self.resend_interval_ms = resend_interval_ms
        self.timeout_s = timeout_s
        self.clock = clock

    def _alert(self, item: OutboxItem, now: int) -> dict[str, Any]:
        data = orjson.loads(item.payload)
        alert = dict(data["alert"])
        ends = parse_ts_ms(data["endsAt"]) if data.get("endsAt") else now + 4 * self.resend_interval_ms
        # Alertmanager refuses an alert that ends before it starts (resolved in the same instant).
        alert["endsAt"] = iso_ms(max(ends, parse_ts_ms(alert["startsAt"]) + 1000))
        return alert

    def _post(self, alerts: list[dict[str, Any]]) -> Outcome:
        try:
            return outcome_of(
                post(
                    self.url,
                    orjson.dumps(alerts),
                    {"Content-Type": "application/json", "User-Agent": "secmon"},
                    self.timeout_s,
                )
            )
        except OSError as exc:
            return unreachable(exc)

    def deliver(self, items: Sequence[OutboxItem]) -> list[Outcome]:
        now = self.clock()
        alerts: list[dict[str, Any] | None] = []
        outcomes: list[Outcome | None] = []
        for item in items:
            try:
                alerts.append(self._alert(item, now))
                outcomes.append(None)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                alerts.append(None)
                outcomes.append(Failed(f"bad alert row: {type(exc).__name__}"))
        good = [a for a in alerts if a is not None]
        if not good:
            return [o for o in outcomes if o is not None]
        outcome = self._post(good)
        if isinstance(outcome, Failed) and len(good) > 1:  # isolate the alert it refuses
            return [o if o is not None else self._post([a]) for a, o in zip(alerts, outcomes, strict=True)]  # type: ignore[list-item]
        return [o if o is not None else outcome for o in outcomes]
