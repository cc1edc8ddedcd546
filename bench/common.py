"""Shared helpers for the benchmarks: event files, broker topics, timing."""

from __future__ import annotations

import json
import resource
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from secmon.contract import EVENT_TYPES


@dataclass
class EventSet:
    """Raw event lines with their topic and key, ready to produce."""

    lines: list[bytes]
    topics: list[str]
    keys: list[bytes]
    ids: list[str]

    @classmethod
    def load(cls, path: Path, limit: int | None = None) -> EventSet:
        lines, topics, keys, ids = [], [], [], []
        with path.open("rb") as fh:
            for line in fh:
                line = line.rstrip(b"\n")
                if not line:
                    continue
                doc = json.loads(line)
                lines.append(line)
                topics.append(EVENT_TYPES[doc["event_type"]].topic)
                keys.append(doc["account_id"].encode())
                ids.append(doc["event_id"])
                if limit and len(lines) >= limit:
                    break
        return cls(lines, topics, keys, ids)

    def __len__(self) -> int:
        return len(self.lines)


def topic_names(prefix: str) -> dict[str, str]:
    names = ("auth.events", "wallet.events", "account.snapshots", "secmon.findings", "secmon.dlq",
             "secmon.repartition", "secmon.notifications")
    return {n: f"{prefix}.{n}" for n in names}


#: The topics a secmon deployment writes (and, for the repartition topic, reads back): each
#: run needs its own, or it reads the records earlier runs forwarded.
OWN_TOPICS = ("secmon.findings", "secmon.dlq", "secmon.repartition", "secmon.notifications")


def create_topics(bootstrap: str, prefix: str, partitions: int = 4, only: tuple[str, ...] | None = None) -> dict[str, str]:
    """Create the topics under ``prefix`` (``only`` these of :func:`topic_names`); their names."""
    names = {k: v for k, v in topic_names(prefix).items() if only is None or k in only}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in names.values()])
    admin.close()
    return names


def new_prefix() -> str:
    return f"b{uuid.uuid4().hex[:6]}"


def produce(bootstrap: str, names: dict[str, str], events: EventSet) -> float:
    """Produce every event (keyed by account); returns events/s."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20, acks=1)
    started = time.perf_counter()
    send = producer.send
    for line, topic, key in zip(events.lines, events.topics, events.keys, strict=True):
        send(names[topic], key=key, value=line)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return len(events) / elapsed


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize()


def chunks(seq: list[bytes], n: int) -> Iterator[list[bytes]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def python_loop_us() -> float:
    """This machine's speed at the moment, for comparing runs: the best of five timings of a
    fixed pure-Python loop (``sum(i * i for i in range(10_000))``), in µs.  The VM's speed
    drifts (seen here: 450-920 µs within a day), and every figure in a run drifts with it."""
    import timeit

    return round(min(timeit.repeat("sum(i * i for i in range(10_000))", number=200, repeat=5)) / 200 * 1e6, 1)
