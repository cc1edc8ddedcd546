"""Inline delivery of the Kafka feed: findings and dead letters leave from the worker
thread as soon as their batch commits, not when a dispatcher thread gets round to them.

Why: on a busy worker, the dispatcher's cycle for each batch of findings (a claim
transaction, a hand-off to another thread under the GIL, a blocking flush, a mark-sent
transaction) was most of the event-to-finding latency.  Here the rows are written in the
batch transaction already claimed by this worker (``inflight``), so no dispatcher takes them;
right after the commit they go to the worker's producer (no flush: its I/O thread sends
them within ``linger_ms``), and the acknowledgements are settled (``sent``) in the next batch
transaction.  A failed send is put back to ``pending``, and the dispatcher retries it with
its backoff.

Nothing is lost or doubled: a crash after the commit leaves the rows in flight; at the
restart of a worker with the same id, or once their lease ends on any worker, the
dispatcher's recovery reads the topic back (:meth:`KafkaTopicSink.reconcile`,
same dedup header) and re-sends only what is not there.  While a send is pending, the ids are
registered with the dispatcher (``busy``) so that recovery does not touch them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kafka import KafkaProducer
from sqlalchemy import Connection

from secmon.alerts.sinks.kafka_topic import send_item
from secmon.clock import wall_ms
from secmon.metrics import Metrics
from secmon.store.outbox import OutboxItem, OutboxMessage, enqueue, enqueue_claimed, mark_sent_in, release_in

log = logging.getLogger(__name__)


class InlineFeed:
    """Sends the outbox rows of some Kafka channels straight after their commit."""

    def __init__(
        self,
        producer: KafkaProducer,
        topics: Mapping[str, str],
        worker_id: str,
        metrics: Metrics,
        *,
        busy: Callable[[set[int], bool], None] = lambda ids, held: None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        """``topics``: channel → topic delivered inline.  ``busy(ids, held)`` tells the
        dispatcher which rows are being sent here (``held``) and when they are settled."""
        self.producer = producer
        self.topics = dict(topics)
        self.worker_id = worker_id
        self.metrics = metrics
        self._busy = busy
        self.clock = clock
        self._staged: list[OutboxItem] = []  # written in the open transaction, not yet sent
        self._lock = threading.Lock()  # the producer's I/O thread runs the callbacks
        self._acked: list[tuple[OutboxItem, int]] = []  # (item, ack wall time)
        self._failed: list[tuple[OutboxItem, str]] = []
        self._outstanding = 0  # sent, outcome not known yet

    # -- inside the batch transaction ---------------------------------------------------
    def enqueue(self, conn: Connection, messages: Sequence[OutboxMessage], now_ms: int) -> None:
        """Write messages in the batch transaction: claimed for inline delivery when their
        channel is one of ours, plain pending rows for the dispatcher otherwise."""
        ours = [m for m in messages if m.channel in self.topics]
        others = [m for m in messages if m.channel not in self.topics]
        if others:
            enqueue(conn, others, now_ms)
        if ours:
            self._staged.extend(enqueue_claimed(conn, ours, now_ms, self.worker_id))

    def settle(self, conn: Connection) -> tuple[int, int]:
        """Write the outcome of earlier sends in the batch transaction; returns how many
        were settled as sent and as failed.  Call :meth:`settled` once it committed."""
        with self._lock:
            acked, failed = list(self._acked), list(self._failed)
        if acked:
            mark_sent_in(conn, [i.id for i, _ in acked], max(t for _, t in acked))
        for item, error in failed:
            release_in(conn, [item.id], error)
        return len(acked), len(failed)

    def settled(self, counts: tuple[int, int]) -> None:
        """The transaction that :meth:`settle` wrote to committed: forget those outcomes."""
        n_acked, n_failed = counts
        if not n_acked and not n_failed:
            return
        with self._lock:
            acked, self._acked = self._acked[:n_acked], self._acked[n_acked:]
            failed, self._failed = self._failed[:n_failed], self._failed[n_failed:]
        for item, at in acked:
            self.metrics.delivery_latency.labels(item.channel).observe(max(0, at - item.created_ms) / 1000)
            self.metrics.deliveries.labels(item.channel, "sent").inc()
        for item, error in failed:
            self.metrics.deliveries.labels(item.channel, "retry").inc()
            log.warning("inline send on %s failed, left to the dispatcher: %s", item.channel, error)
        self._busy({i.id for i, _ in acked} | {i.id for i, _ in failed}, False)

    def pending_outcomes(self) -> bool:
        """Whether outcomes are waiting to be written (a batch with nothing else to commit
        still commits them)."""
        with self._lock:
            return bool(self._acked or self._failed)

    # -- after the transaction ----------------------------------------------------------
    def discard_staged(self) -> None:
        """The batch transaction rolled back: its rows do not exist."""
        self._staged.clear()

    def send_staged(self) -> None:
        """The batch committed: send its rows (asynchronously, in commit order)."""
        items, self._staged = self._staged, []
        if not items:
            return
        self._busy({i.id for i in items}, True)
        with self._lock:
            self._outstanding += len(items)
        for item in items:
            try:
                future = send_item(self.producer, self.topics[item.channel], item)
            except Exception as exc:  # e.g. the buffer is full: the dispatcher retries it
                self._on_error(item, exc)
                continue
            future.add_callback(self._on_ack, item)
            future.add_errback(self._on_error, item)

    def wait_outcomes(self, timeout_s: float) -> bool:
        """Wait (bounded) until every send has an outcome (shutdown); False on time-out."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if not self._outstanding:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def _on_ack(self, item: OutboxItem, _metadata: Any) -> None:
        with self._lock:
            self._acked.append((item, self.clock()))
            self._outstanding -= 1

    def _on_error(self, item: OutboxItem, exc: BaseException) -> None:
        with self._lock:
            self._failed.append((item, f"{type(exc).__name__}: {exc}"))
            self._outstanding -= 1
