"""The outbox dispatcher: delivers due rows through their sinks, with retries and backoff.

Runs as a thread beside the consumer loop (woken after each batch commit) or as its own
process.  A sink that is down only delays its channel: rows wait with exponential backoff
and are dead-lettered (status ``dead``, counted) after ``max_attempts``; nothing is dropped.
Rows left in flight by a crashed dispatcher are reconciled by their sink after ``lease_ms``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from secmon.alerts.sinks.base import Delivered, Failed, Retry, Sink
from secmon.metrics import Metrics
from secmon.store.outbox import Outbox

log = logging.getLogger(__name__)


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        sinks: Mapping[str, Sink],
        metrics: Metrics,
        *,
        batch_size: int = 500,
        max_attempts: int = 15,
        base_backoff_ms: int = 500,
        max_backoff_ms: int = 300_000,
        lease_ms: int = 60_000,
        idle_wait_s: float = 0.5,
        clock: Callable[[], int] = _wall_ms,
    ) -> None:
        self.outbox = outbox
        self.sinks = dict(sinks)
        self.metrics = metrics
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.base_backoff_ms = base_backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.lease_ms = lease_ms
        self.idle_wait_s = idle_wait_s
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_recover = 0
        #: Undelivered rows across channels at the last metrics refresh (for backpressure).
        self.pending_total = 0

    # -- one pass ------------------------------------------------------------------------
    def run_once(self) -> int:
        """Deliver every due row once; returns how many were delivered."""
        delivered = 0
        for channel, sink in self.sinks.items():
            while True:
                items = self.outbox.claim(channel, self.batch_size, self.clock())
                if not items:
                    break
                try:
                    outcomes = sink.deliver(items)
                except Exception as exc:  # a sink bug must not kill the dispatcher
                    log.exception("sink %s raised", channel)
                    outcomes = [Retry(f"{type(exc).__name__}: {exc}")] * len(items)
                now = self.clock()
                sent = [i for i, o in zip(items, outcomes, strict=True) if isinstance(o, Delivered)]
                self.outbox.mark_sent([i.id for i in sent], now)
                for item in sent:
                    self.metrics.delivery_latency.labels(channel).observe(max(0, now - item.created_ms) / 1000)
                if sent:
                    self.metrics.deliveries.labels(channel, "sent").inc(len(sent))
                delivered += len(sent)
                for item, outcome in zip(items, outcomes, strict=True):
                    if isinstance(outcome, Retry):
                        if item.attempts + 1 >= self.max_attempts:
                            self.outbox.mark_dead(item, outcome.error)
                            self.metrics.deliveries.labels(channel, "dead").inc()
                            log.error("outbox row %s on %s dead after %d attempts: %s",
                                      item.id, channel, item.attempts + 1, outcome.error)
                        else:
                            self.outbox.mark_retry(item, outcome.error, now + self._backoff(item, outcome))
                            self.metrics.deliveries.labels(channel, "retry").inc()
                    elif isinstance(outcome, Failed):
                        self.outbox.mark_dead(item, outcome.error)
                        self.metrics.deliveries.labels(channel, "dead").inc()
                        log.error("outbox row %s on %s failed permanently: %s", item.id, channel, outcome.error)
                if len(sent) < len(items):
                    break  # the sink is struggling: let the backoff work
        return delivered

    def recover(self, *, all_inflight: bool = False) -> int:
        """Settle rows left in flight past their lease (or all, at start-up)."""
        now = self.clock()
        cutoff = now + 1 if all_inflight else now - self.lease_ms
        settled = 0
        for channel, sink in self.sinks.items():
            stale = self.outbox.stale_inflight(channel, cutoff)
            if not stale:
                continue
            try:
                done = sink.reconcile(stale)
            except Exception:
                log.exception("reconcile on %s failed; items will be re-sent", channel)
                done = set()
            self.outbox.mark_sent(sorted(done), now)
            self.outbox.release([i.id for i in stale if i.id not in done])
            settled += len(stale)
            log.info("recovered %d in-flight rows on %s (%d confirmed delivered)", len(stale), channel, len(done))
        return settled

    def refresh_metrics(self) -> None:
        now = self.clock()
        depth = self.outbox.depth()
        self.pending_total = sum(count for count, _ in depth.values())
        for channel in self.sinks:
            count, oldest = depth.get(channel, (0, None))
            self.metrics.outbox_depth.labels(channel).set(count)
            self.metrics.outbox_oldest_age.labels(channel).set(max(0, now - oldest) / 1000 if oldest else 0)

    def _backoff(self, item, outcome: Retry) -> int:  # type: ignore[no-untyped-def]
        if outcome.retry_after_ms is not None:
            return outcome.retry_after_ms
        delay = min(self.max_backoff_ms, self.base_backoff_ms * (2 ** item.attempts))
        return delay + (item.id * 37) % max(1, delay // 4)  # deterministic jitter spreads retries

    # -- thread --------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self.recover(all_inflight=False)
        self._thread = threading.Thread(target=self._loop, name="secmon-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for sink in self.sinks.values():
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %s", sink.channel)

    def _loop(self) -> None:
        last_metrics = 0.0
        while not self._stop.is_set():
            try:
                self.run_once()
                now = time.monotonic()
                if now - last_metrics > 2:
                    last_metrics = now
                    self.refresh_metrics()
                    if self.clock() - self._last_recover > self.lease_ms:
                        self._last_recover = self.clock()
                        self.recover()
            except Exception:
                log.exception("dispatcher pass failed")
            self._wake.wait(self.idle_wait_s)
            self._wake.clear()
