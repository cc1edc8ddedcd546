"""An HTTP webhook sink: one JSON POST per outbox row.

Used for the security feed's signed webhooks (SIEM, chat-ops) and for the wallet's
SMS/push service.  Each request carries ``Idempotency-Key`` (and ``X-Secmon-Delivery``):
a stable hash of the outbox dedup key, so a message re-sent after a crash or a timeout
is recognised by the receiver.  With a secret, requests are signed (``X-Secmon-Signature``,
see :mod:`secmon.alerts.sinks.http`); with a token, ``Authorization: Bearer`` is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from secmon.alerts.sinks.base import Outcome, Retry, Sink
from secmon.alerts.sinks.http import (
    SIGNATURE_HEADER,
    delivery_id,
    outcome_of,
    post,
    signature_header,
    unreachable,
)
from secmon.store.outbox import OutboxItem


class WebhookSink(Sink):
    def __init__(
        self,
        channel: str,
        url: str,
        *,
        secret: str = "",
        bearer: str = "",
        timeout_s: float = 5.0,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self.url = url
        self._secret = secret.encode()
        self._bearer = bearer
        self.timeout_s = timeout_s
        self.clock_s = clock_s

    def headers(self, item: OutboxItem) -> dict[str, str]:
        key = delivery_id(item.dedup_key)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "secmon",
            "Idempotency-Key": key,
            "X-Secmon-Delivery": key,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = signature_header(self._secret, item.payload, int(self.clock_s()))
        if self._bearer:
            headers["Authorization"] = f"Bearer {self._bearer}"
        return headers

    def deliver(self, items: Sequence[OutboxItem]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for item in items:
            try:
                outcome = outcome_of(post(self.url, item.payload, self.headers(item), self.timeout_s))
            except OSError as exc:
                outcome = unreachable(exc)
            outcomes.append(outcome)
            if isinstance(outcome, Retry) and outcome.peer_down:  # don't hammer a peer that is down
                outcomes.extend([outcome] * (len(items) - len(outcomes)))
                break
        return outcomes
