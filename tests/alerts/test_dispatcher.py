"""The outbox dispatcher: retries and dead letters, peer outages, order, channel isolation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, select

from secmon.alerts.dispatcher import Dispatcher
from secmon.alerts.sinks.base import DELIVERED, Failed, Outcome, Retry, Sink
from secmon.alerts.sinks.webhook import WebhookSink
from secmon.metrics import Metrics
from secmon.net import free_port
from secmon.store.outbox import Outbox, OutboxItem, OutboxMessage, enqueue
from secmon.store.schema import outbox
from tests.alerts.conftest import NOW, Clock, HttpReceiver, wait_until


class Scripted(Sink):
    """A sink whose answer per item is decided by ``answer(item)``; records what it saw."""

    def __init__(self, channel: str, answer: Callable[[OutboxItem], Outcome], ordered: bool = False,
                 delay_s: float = 0.0) -> None:  # fmt: skip
        self.channel = channel
        self.answer = answer
        self.ordered = ordered
        self.delay_s = delay_s
        self.seen: list[str] = []

    def deliver(self, items: Sequence[OutboxItem]) -> list[Outcome]:
        time.sleep(self.delay_s)
        self.seen.extend(i.dedup_key for i in items)
        out: list[Outcome] = []
        for item in items:
            if self.ordered and out and out[-1] is not DELIVERED:
                out.append(Retry("not sent: behind a failed message"))  # an ordered sink stops there
            else:
                out.append(self.answer(item))
        return out


def put(engine: Engine, channel: str, keys: Sequence[str], now: int = NOW) -> None:
    with engine.begin() as conn:
        enqueue(conn, [OutboxMessage(channel, k, k.encode()) for k in keys], now)


def state(engine: Engine, channel: str) -> list[tuple[str, str, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(outbox.c.dedup_key, outbox.c.status, outbox.c.attempts).where(outbox.c.channel == channel)
            .order_by(outbox.c.id))]  # fmt: skip


def dispatcher(engine: Engine, sinks: Sequence[Sink], clock: Clock, metrics: Metrics | None = None,
               **options: int) -> Dispatcher:  # fmt: skip
    return Dispatcher(Outbox(engine, "t"), {s.channel: s for s in sinks}, metrics or Metrics(), clock=clock, **options)  # type: ignore[arg-type]


def test_item_failures_back_off_and_are_dead_lettered_after_max_attempts(engine: Engine) -> None:
    clock = Clock()
    metrics = Metrics()
    sink = Scripted("c", lambda i: Retry("HTTP 500") if i.dedup_key == "bad" else DELIVERED)
    d = dispatcher(engine, [sink], clock, metrics, max_attempts=3, base_backoff_ms=1000)
    put(engine, "c", ["ok", "bad", "gone"])
    outcomes: dict[str, Outcome] = {"bad": Retry("HTTP 500"), "gone": Failed("HTTP 400")}
    sink.answer = lambda i: outcomes.get(i.dedup_key, DELIVERED)
    assert d.run_once() == 1
    assert state(engine, "c") == [("ok", "sent", 0), ("bad", "pending", 1), ("gone", "dead", 1)]
    assert d.run_once() == 0 and sink.seen.count("bad") == 1  # backing off
    clock.now += 1500
    d.run_once()
    clock.now += 10_000
    d.run_once()
    assert state(engine, "c")[1] == ("bad", "dead", 3)
    value = metrics.registry.get_sample_value
    assert value("secmon_sink_deliveries_total", {"channel": "c", "outcome": "dead"}) == 2
    assert value("secmon_sink_deliveries_total", {"channel": "c", "outcome": "retry"}) == 2


def test_a_peer_outage_pauses_the_channel_without_using_up_attempts(engine: Engine) -> None:
    """Down ten times in a row (more than max_attempts): nothing is dead, all wait, then go."""
    clock = Clock()
    down = [True]
    sink = Scripted("c", lambda i: Retry("refused", peer_down=True) if down[0] else DELIVERED)
    d = dispatcher(engine, [sink], clock, max_attempts=3, base_backoff_ms=1000, max_backoff_ms=8000)
    put(engine, "c", ["a", "b"])
    pauses = []
    for _ in range(10):
        d.run_once()
        pauses.append(d.paused_until["c"] - clock.now)
        clock.now = d.paused_until["c"]
    clock.now -= 1
    assert pauses == [1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000, 8000, 8000]
    assert state(engine, "c") == [("a", "pending", 0), ("b", "pending", 0)]
    tries = len(sink.seen)
    assert d.run_once() == 0 and len(sink.seen) == tries  # still paused: not even tried
    down[0] = False
    clock.now = d.paused_until["c"]
    assert d.run_once() == 2 and len(sink.seen) == tries + 2
    assert d.run_once() == 0


def test_retry_after_from_the_peer_sets_the_pause(engine: Engine) -> None:
    clock = Clock()
    calls = []

    def answer(_item: OutboxItem) -> Outcome:
        calls.append(1)
        return Retry("429", 30_000, peer_down=True) if len(calls) == 1 else DELIVERED

    sink = Scripted("c", answer)
    d = dispatcher(engine, [sink], clock)
    put(engine, "c", ["a"])
    d.run_once()
    assert d.paused_until["c"] == NOW + 30_000
    clock.now += 29_000
    assert d.run_once() == 0 and len(calls) == 1
    clock.now += 1_000
    assert d.run_once() == 1


def test_ordered_channel_never_lets_a_newer_row_overtake_an_older_one(engine: Engine) -> None:
    clock = Clock()
    failing = {"r1"}
    sink = Scripted("am", lambda i: Retry("HTTP 500") if i.dedup_key in failing else DELIVERED, ordered=True)
    d = dispatcher(engine, [sink], clock, base_backoff_ms=1000)
    put(engine, "am", ["r0", "r1", "r2"])
    assert d.run_once() == 1
    put(engine, "am", ["r3"], now=clock.now)  # new and due now, but behind r1
    assert d.run_once() == 0 and sink.seen == ["r0", "r1", "r2"]
    failing.clear()
    clock.now += 5000
    assert d.run_once() == 3
    assert sink.seen[3:] == ["r1", "r2", "r3"]
    assert [s for _, s, _ in state(engine, "am")] == ["sent"] * 4


def test_a_slow_channel_does_not_hold_up_the_others(engine: Engine) -> None:
    """Each channel has its own thread: the findings feed flows while SMTP is timing out."""
    slow = Scripted("notify.email", lambda i: Retry("timeout", peer_down=True), delay_s=3.0)
    fast = Scripted("findings", lambda i: DELIVERED)
    d = Dispatcher(Outbox(engine, "t"), {"notify.email": slow, "findings": fast}, Metrics(), idle_wait_s=0.05)
    put(engine, "notify.email", ["m1"], now=int(time.time() * 1000))
    d.start()
    try:
        time.sleep(0.3)  # the e-mail thread is now stuck in its 3 s delivery
        put(engine, "findings", ["f1", "f2"], now=int(time.time() * 1000))
        d.wake()
        started = time.monotonic()
        assert wait_until(lambda: fast.seen == ["f1", "f2"], timeout_s=2.5)
        assert time.monotonic() - started < 2.0
    finally:
        d.stop()


def test_a_sink_that_raises_is_retried_not_fatal(engine: Engine) -> None:
    clock = Clock()

    class Broken(Sink):
        channel = "c"

        def deliver(self, items: Sequence[OutboxItem]) -> list[Outcome]:
            raise RuntimeError("bug")

    d = dispatcher(engine, [Broken()], clock)
    put(engine, "c", ["a"])
    assert d.run_once() == 0
    assert state(engine, "c") == [("a", "pending", 1)]


def test_webhook_down_for_a_while_then_everything_arrives_once(engine: Engine) -> None:
    """A real HTTP receiver that is not there yet: messages wait, then arrive exactly once."""
    port = free_port()
    receiver = HttpReceiver(port)
    sink = WebhookSink("webhook.siem", receiver.url, secret="k", timeout_s=2)
    d = Dispatcher(Outbox(engine, "t"), {"webhook.siem": sink}, Metrics(), base_backoff_ms=100, idle_wait_s=0.05)
    put(engine, "webhook.siem", [f"f{i}:0" for i in range(5)], now=int(time.time() * 1000))
    d.start()
    try:
        time.sleep(1.0)  # several attempts against nothing
        assert [s for _, s, _ in state(engine, "webhook.siem")] == ["pending"] * 5
        receiver.start()
        d.wake()
        assert wait_until(lambda: len(receiver.received) >= 5, timeout_s=20)
        time.sleep(0.5)
        keys = [r.headers["Idempotency-Key"] for r in receiver.received]
        assert len(keys) == 5 and len(set(keys)) == 5
        assert [(s, a) for _, s, a in state(engine, "webhook.siem")] == [("sent", 0)] * 5
    finally:
        d.stop()
        receiver.stop()


def test_stop_returns_promptly_even_with_a_backlog(engine: Engine) -> None:
    sink = Scripted("c", lambda i: DELIVERED, delay_s=0.05)
    d = Dispatcher(Outbox(engine, "t"), {"c": sink}, Metrics(), batch_size=1, idle_wait_s=0.05)
    put(engine, "c", [f"k{i}" for i in range(200)], now=int(time.time() * 1000))
    d.start()
    time.sleep(0.2)
    stopper = threading.Thread(target=d.stop)
    started = time.monotonic()
    stopper.start()
    stopper.join(5)
    assert time.monotonic() - started < 2 and 0 < len(sink.seen) < 200


def test_recovery_leaves_alone_what_its_own_threads_are_still_delivering(engine: Engine) -> None:
    """A batch slower than the lease is not taken away and sent twice."""
    sink = Scripted("c", lambda i: DELIVERED, delay_s=1.5)
    d = Dispatcher(Outbox(engine, "t"), {"c": sink}, Metrics(), lease_ms=100, idle_wait_s=0.05)
    put(engine, "c", ["slow"], now=int(time.time() * 1000))
    d.start()
    try:
        assert wait_until(lambda: state(engine, "c") == [("slow", "inflight", 0)], timeout_s=2)
        time.sleep(0.3)  # past the lease
        assert d.recover() == 0
        assert wait_until(lambda: state(engine, "c") == [("slow", "sent", 0)], timeout_s=5)
        time.sleep(0.3)
        assert sink.seen == ["slow"]
    finally:
        d.stop()
    stale = Outbox(engine, "dead-worker")
    put(engine, "c", ["orphan"], now=int(time.time() * 1000))
    assert [i.dedup_key for i in stale.claim("c", 10, int(time.time() * 1000))] == ["orphan"]
    time.sleep(0.2)
    assert d.recover() == 1  # a dead dispatcher's row is put back for delivery
    assert state(engine, "c")[-1] == ("orphan", "pending", 0)
