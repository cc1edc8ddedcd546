"""Play a simulation into Kafka, in (accelerated) real time.

The simulated timeline is shifted so that its first event happens *now*: every timestamp
(``occurred_at``, and ``locked_until``/``created_at`` in payloads) moves by the same offset,
so all intervals — a 30-minute SLA, a 15-minute lockout window — stay exactly as simulated.

Pacing: with ``speed`` S an event is sent when the wall clock has advanced by its simulated
offset divided by S (S = 1 is real time: three simulated days take three days; S = 60 plays
a simulated hour per minute, and event time then runs ahead of the wall clock).  With
``rate`` R at most R events are sent per second.  With both, the slower bound wins; with
neither, events go as fast as the producer takes them.  Keys are the ``account_id``
(UTF-8), values the event as JSON, topics by event type (the contract's
``auth.events``/``wallet.events``/``account.snapshots``, renamed by the config's
``kafka.topics``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import orjson

from secmon.config import Topics
from secmon.contract import EVENT_TYPES
from secmon.sim.generate import shift_event


class Producer(Protocol):
    def send(self, topic: str, value: bytes, key: bytes) -> Any: ...
    def flush(self, timeout: float | None = None) -> None: ...


def topic_map(topics: Topics) -> dict[str, str]:
    """event_type → configured topic name."""
    by_default = {"auth.events": topics.auth, "wallet.events": topics.wallet, "account.snapshots": topics.snapshots}
    return {etype: by_default[cls.topic] for etype, cls in EVENT_TYPES.items()}


def play(
    events: Sequence[tuple[int, int, dict[str, Any]]],
    producer: Producer,
    topics: Topics,
    *,
    shift_ms: int,
    rate: float | None = None,
    speed: float | None = None,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> int:
    """Send every event (shifted by ``shift_ms``) paced as the module docstring says."""
    if not events:
        return 0
    topic_of = topic_map(topics)
    first = events[0][0]
    started = time.monotonic()
    sent = 0
    rows: Iterable[tuple[int, int, dict[str, Any]]] = progress(events, len(events)) if progress else events
    for i, (ts, _, ev) in enumerate(rows):
        due = 0.0
        if speed:
            due = (ts - first) / 1000.0 / speed
        if rate:
            due = max(due, i / rate)
        wait = started + due - time.monotonic()
        if wait > 0.002:
            time.sleep(wait)
        producer.send(
            topic_of[ev["event_type"]],
            value=orjson.dumps(shift_event(ev, ts, shift_ms)),
            key=ev["account_id"].encode("utf-8"),
        )
        sent += 1
    producer.flush()
    return sent
