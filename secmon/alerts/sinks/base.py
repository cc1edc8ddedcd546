"""What a sink is: delivers claimed outbox items of one channel, reports each outcome.

A sink never raises for a delivery problem: it returns :class:`Retry` (transient: the
dispatcher backs off and tries again, honouring ``retry_after_ms``) or :class:`Failed`
(permanent: the row is dead-lettered).  Sinks should be idempotent where the peer allows it
(send the outbox ``dedup_key`` as an idempotency key / Message-ID / header).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from secmon.store.outbox import OutboxItem


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Retry:
    """Try again later.  ``peer_down``: the peer itself is unavailable (connection refused,
    503, 429 …), not this item: the dispatcher pauses the whole channel and does not count
    the attempt towards dead-lettering, so an outage delays messages but never loses them."""

    error: str
    retry_after_ms: int | None = None
    peer_down: bool = False


@dataclass(frozen=True)
class Failed:
    error: str


Outcome = Delivered | Retry | Failed
DELIVERED = Delivered()


class Sink(ABC):
    """Delivers the outbox rows of one channel."""

    channel: str
    #: Deliver strictly in enqueue order (Alertmanager: a re-send must not overtake the
    #: resolution): the dispatcher claims only the due head of the channel and holds back
    #: the rest of a batch behind the first item that was not delivered.
    ordered: bool = False

    @abstractmethod
    def deliver(self, items: Sequence[OutboxItem]) -> list[Outcome]:
        """Deliver items (in order); one outcome per item."""

    def reconcile(self, items: Sequence[OutboxItem]) -> set[int]:
        """Of items left in flight by a crash, the ids the peer is known to have received.

        The default knows nothing: those items are sent again (with the same idempotency
        key)."""
        return set()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
