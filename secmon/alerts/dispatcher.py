"""The outbox dispatcher: delivers due rows through their sinks, with retries and backoff.

Runs beside the consumer loop, one thread per channel (woken after each batch commit), so
a slow or dead sink (an SMTP server timing out) never delays another channel (the findings
feed).  ``run_once`` does one pass over every channel in the calling thread (tests, final
flush at shutdown).

Failures come in two kinds (see :class:`~secmon.alerts.sinks.base.Retry`):

* the *item* failed (a 500 for this message): the row is retried with exponential backoff
  and dead-lettered (status ``dead``, counted, kept) after ``max_attempts``;
* the *peer* is down (connection refused, 429/503): the whole channel pauses — honouring
  ``Retry-After`` — and its rows wait without using up attempts, so an outage of any length
  delays delivery but loses nothing.  Backpressure stays bounded because the worker pauses
  consumption when the undelivered rows exceed ``delivery.max_pending``.

Ordered sinks (Alertmanager) get only the due head of their channel, and the rest of a
batch is held behind the first row that was not delivered.  Rows left in flight by a
crashed dispatcher are reconciled by their sink after ``lease_ms`` or sent again with the
same idempotency key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from secmon.alerts.sinks.base import Delivered, Failed, Outcome, Retry, Sink
from secmon.clock import wall_ms
from secmon.metrics import Metrics
from secmon.store.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)


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
        clock: Callable[[], int] = wall_ms,
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
        self._wakes = {channel: threading.Event() for channel in self.sinks}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_recover = 0
        self._lock = threading.Lock()
        self._delivering: set[int] = set()  # rows this process's threads hold right now
        #: Channel → wall time before which it is not tried (its peer is down).
        self.paused_until: dict[str, int] = {}
        self._down_streak: dict[str, int] = {}
        #: Undelivered rows across channels (for backpressure): the count at the last metrics
        #: refresh plus what :meth:`note_enqueued` reported since, so the bound holds between
        #: refreshes too.
        self.pending_total = 0
        self._enqueued = 0  # rows reported by note_enqueued, ever

    # -- one pass ------------------------------------------------------------------------
    def run_once(self) -> int:
        """Deliver every due row of every channel once; returns how many were delivered."""
        return sum(self.run_channel(channel) for channel in self.sinks)

    def run_channel(self, channel: str, *, stoppable: bool = False) -> int:
        """Deliver the due rows of one channel (nothing while its peer is paused);
        ``stoppable``: give up between batches once :meth:`stop` was called."""
        sink = self.sinks[channel]
        if self.paused_until.get(channel, 0) > self.clock():
            return 0
        delivered = 0
        while not (stoppable and self._stop.is_set()):
            items = self.outbox.claim(channel, self.batch_size, self.clock(), ordered=sink.ordered)
            if not items:
                break
            ids = {i.id for i in items}
            with self._lock:
                self._delivering |= ids
            try:
                try:
                    outcomes = sink.deliver(items)
                    if len(outcomes) != len(items):
                        raise RuntimeError(f"{len(outcomes)} outcomes for {len(items)} items")
                except Exception as exc:  # a sink bug must not kill the dispatcher
                    log.exception("sink %s raised", channel)
                    outcomes = [Retry(f"{type(exc).__name__}: {exc}")] * len(items)
                sent = self._settle(channel, sink, items, outcomes)
            finally:
                with self._lock:
                    self._delivering -= ids
            delivered += sent
            if sent < len(items):
                break  # the sink is struggling: let the backoff work
        return delivered

    def _settle(self, channel: str, sink: Sink, items: Sequence[OutboxItem], outcomes: Sequence[Outcome]) -> int:
        now = self.clock()
        sent = [i for i, o in zip(items, outcomes, strict=True) if isinstance(o, Delivered)]
        self.outbox.mark_sent([i.id for i in sent], now)
        for item in sent:
            self.metrics.delivery_latency.labels(channel).observe(max(0, now - item.created_ms) / 1000)
        if sent:
            self.metrics.deliveries.labels(channel, "sent").inc(len(sent))
        down = [o for o in outcomes if isinstance(o, Retry) and o.peer_down]
        pause_until = self._pause(channel, down, now) if down else None
        if not down and sent:
            self._down_streak[channel] = 0
        held_until: int | None = None  # ordered: where the first undelivered row waits
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Delivered):
                continue
            if held_until is not None:  # behind an older row of an ordered channel
                self.outbox.defer([item.id], held_until, "held behind an earlier message")
                continue
            if isinstance(outcome, Failed):
                self._dead(channel, item, outcome.error, "failed permanently")
                continue
            assert isinstance(outcome, Retry)
            if outcome.peer_down:
                assert pause_until is not None
                self.outbox.defer([item.id], pause_until, outcome.error)
                self.metrics.deliveries.labels(channel, "deferred").inc()
                nxt = pause_until
            elif item.attempts + 1 >= self.max_attempts:
                self._dead(channel, item, outcome.error, f"dead after {item.attempts + 1} attempts")
                continue
            else:
                nxt = now + self._backoff(item, outcome)
                self.outbox.mark_retry(item, outcome.error, nxt)
                self.metrics.deliveries.labels(channel, "retry").inc()
            if sink.ordered:
                held_until = nxt
        return len(sent)

    def _pause(self, channel: str, down: Sequence[Retry], now: int) -> int:
        """The peer is down: pause the channel (``Retry-After`` or a growing backoff)."""
        streak = self._down_streak.get(channel, 0) + 1
        self._down_streak[channel] = streak
        hinted = [o.retry_after_ms for o in down if o.retry_after_ms is not None]
        delay = max(hinted) if hinted else self.base_backoff_ms * (2 ** min(streak - 1, 20))
        delay = max(1, min(self.max_backoff_ms, delay))
        until = now + delay
        self.paused_until[channel] = until
        if streak == 1 or streak & (streak - 1) == 0:  # 1, 2, 4, 8 …: say it, without flooding the log
            log.warning("sink %s unavailable (%s); pausing it %.1fs (failure %d in a row)",
                        channel, down[0].error, delay / 1000, streak)  # fmt: skip
        return until

    def _dead(self, channel: str, item: OutboxItem, error: str, why: str) -> None:
        self.outbox.mark_dead(item, error)
        self.metrics.deliveries.labels(channel, "dead").inc()
        log.error("outbox row %s on %s %s: %s", item.id, channel, why, error)

    def recover(self, *, all_inflight: bool = False, mine: bool = False) -> int:
        """Settle rows left in flight past their lease (or all); ``mine``: also those claimed
        under this worker id (at start-up, from this worker's previous life: a pod restarted
        under the same name need not wait for the lease).

        Rows this dispatcher's own threads are still delivering (a slow batch) are left alone."""
        now = self.clock()
        cutoff = now + 1 if all_inflight else now - self.lease_ms
        settled = 0
        for channel, sink in self.sinks.items():
            with self._lock:
                busy = set(self._delivering)
            stale = [i for i in self.outbox.stale_inflight(channel, cutoff, mine=mine) if i.id not in busy]
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

    def hold(self, ids: set[int], held: bool) -> None:
        """Rows another sender in this process (the worker's :class:`InlineFeed`) is
        delivering (``held``) or has settled: recovery leaves held rows alone."""
        with self._lock:
            if held:
                self._delivering |= ids
            else:
                self._delivering -= ids

    def note_enqueued(self, rows: int) -> None:
        """The worker committed ``rows`` more outbox rows (at least one per new finding)."""
        with self._lock:
            self.pending_total += rows
            self._enqueued += rows

    def refresh_metrics(self) -> None:
        now = self.clock()
        with self._lock:
            before = self._enqueued
        depth = self.outbox.depth()
        with self._lock:
            # Rows committed while the count ran may or may not be in it: count them again
            # rather than lose them (too high pauses early for a moment; too low overruns).
            self.pending_total = sum(count for count, _ in depth.values()) + self._enqueued - before
        for channel in self.sinks:
            count, oldest = depth.get(channel, (0, None))
            self.metrics.outbox_depth.labels(channel).set(count)
            self.metrics.outbox_oldest_age.labels(channel).set(max(0, now - oldest) / 1000 if oldest else 0)

    def _backoff(self, item: OutboxItem, outcome: Retry) -> int:
        if outcome.retry_after_ms is not None:
            return min(self.max_backoff_ms, max(0, outcome.retry_after_ms))
        delay = min(self.max_backoff_ms, self.base_backoff_ms * (2 ** min(item.attempts, 30)))
        return delay + (item.id * 37) % max(1, delay // 4)  # deterministic jitter spreads retries

    # -- threads -------------------------------------------------------------------------
    def wake(self, skip: Collection[str] = ()) -> None:
        """Wake the channel threads (but those of ``skip``): there are rows to deliver."""
        for channel, event in self._wakes.items():
            if channel not in skip:
                event.set()

    def start(self) -> None:
        self.recover(mine=True)
        self._stop.clear()
        for channel in self.sinks:
            t = threading.Thread(target=self._channel_loop, args=(channel,), name=f"secmon-out-{channel}", daemon=True)
            self._threads.append(t)
        self._threads.append(threading.Thread(target=self._housekeeping, name="secmon-out-house", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        for sink in self.sinks.values():
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %s", sink.channel)

    def _channel_loop(self, channel: str) -> None:
        wake = self._wakes[channel]
        while not self._stop.is_set():
            try:
                self.run_channel(channel, stoppable=True)
            except Exception:
                log.exception("dispatcher pass on %s failed", channel)
            wake.wait(self.idle_wait_s)
            wake.clear()

    def _housekeeping(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh_metrics()
                if self.clock() - self._last_recover > self.lease_ms:
                    self._last_recover = self.clock()
                    self.recover()
            except Exception:
                log.exception("dispatcher housekeeping failed")
            self._stop.wait(2.0)
