"""Kafka plumbing: clients from config, topic creation and the co-partitioning check."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, TypeAlias

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError, TopicAlreadyExistsError

from secmon.config import KafkaConfig
from secmon.contract import DEFAULT_MAX_EVENT_BYTES
from secmon.runtime.supervisor import workers_on_host
from secmon.sources.consumer import ResumableConsumer
from secmon.sources.fetch_process import ProcessConsumer

log = logging.getLogger(__name__)


#: What the worker consumes through: kafka-python's consumer, or its stand-in in a fetch process.
GroupConsumer: TypeAlias = KafkaConsumer | ProcessConsumer


class TopologyError(RuntimeError):
    """The topics are not laid out as secmon needs (e.g. not co-partitioned)."""


def make_consumer(cfg: KafkaConfig, *, group: bool = True, **overrides: Any) -> KafkaConsumer:
    return ResumableConsumer(**consumer_options(cfg, group=group, **overrides))


def consumer_options(cfg: KafkaConfig, *, group: bool = True, **overrides: Any) -> dict[str, Any]:
    """A consumer with manual commits and the Range assignor.

    Range assigns partition *p* of every subscribed topic with the same partition count to
    the same member, which is what co-partitioning needs (one worker sees all topics of an
    account).
    """
    opts: dict[str, Any] = cfg.client_options() | {
        "client_id": cfg.client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": cfg.fetch_max_wait_ms,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_poll_records": cfg.max_poll_records,
        "key_deserializer": None,
        "value_deserializer": None,
    }
    if group:
        opts |= {
            "group_id": cfg.group_id,
            "session_timeout_ms": cfg.session_timeout_ms,
            "heartbeat_interval_ms": cfg.heartbeat_interval_ms,
            "max_poll_interval_ms": cfg.max_poll_interval_ms,
            "partition_assignment_strategy": [RangePartitionAssignor],
        }
    else:
        opts["group_id"] = None
    opts |= overrides
    return opts


def use_fetch_process(setting: bool | str) -> bool:
    """``kafka.fetch_process`` resolved: ``auto`` is on when this host has at least two cores
    per worker (``SECMON_WORKERS_ON_HOST``, set by ``secmon run --workers``; else 1)."""
    if setting != "auto":
        return bool(setting)
    return (os.cpu_count() or 1) >= 2 * workers_on_host()


def make_group_consumer(cfg: KafkaConfig, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> GroupConsumer:
    """The worker's consumer: in a fetch process of its own unless ``kafka.fetch_process`` is
    off.  The fetch process decodes the input topics' events (``max_event_bytes`` as
    ``engine.max_event_bytes``)."""
    if not use_fetch_process(cfg.fetch_process):
        return make_consumer(cfg)
    return ProcessConsumer(consumer_options(cfg), decode_topics=cfg.topics.inputs(), max_event_bytes=max_event_bytes)


def make_producer(cfg: KafkaConfig, **overrides: Any) -> KafkaProducer:
    """A producer that waits for all replicas and keeps per-partition order (one request in
    flight), as the repartition de-duplication and the feed's revision order rely on it."""
    opts: dict[str, Any] = cfg.client_options() | {
        "client_id": f"{cfg.client_id}-producer",
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 512 * 1024,
        "max_in_flight_requests_per_connection": 1,
        "retries": 5,
        "max_request_size": 8 * 1024 * 1024,
    }
    opts |= overrides
    return KafkaProducer(**opts)


def make_admin(cfg: KafkaConfig) -> KafkaAdminClient:
    return KafkaAdminClient(**cfg.client_options(), client_id=f"{cfg.client_id}-admin")


def wait_for_broker(cfg: KafkaConfig, timeout_s: float = 60.0) -> None:
    """Block until the bootstrap servers answer (start-up order in compose/k8s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            make_admin(cfg).close()
            return
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise TopologyError(f"no Kafka broker at {cfg.bootstrap_servers}: {exc}") from exc
            time.sleep(0.5)


def ensure_topics(cfg: KafkaConfig, topics: list[str], partitions: int | None = None) -> None:
    """Create missing topics (dev/demo; production topics are provisioned by ops)."""
    admin = make_admin(cfg)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            new = [
                NewTopic(t, num_partitions=partitions or cfg.partitions, replication_factor=cfg.replication_factor)
                for t in missing
            ]
            try:
                admin.create_topics(new)
                log.info("created topics %s", missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def partition_counts(consumer: GroupConsumer, topics: list[str], timeout_s: float = 30.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    counts: dict[str, int] = {}
    for topic in topics:
        while True:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                counts[topic] = len(parts)
                break
            if time.monotonic() > deadline:
                raise TopologyError(f"topic {topic!r} does not exist (create it, or set kafka.create_topics)")
            time.sleep(0.2)
    return counts


def check_copartitioned(counts: dict[str, int]) -> int:
    """All input topics and the repartition topic must have the same partition count."""
    distinct = set(counts.values())
    if len(distinct) != 1:
        detail = ", ".join(f"{t}={n}" for t, n in sorted(counts.items()))
        raise TopologyError(
            "input topics must be co-partitioned (same partition count, keyed by account_id) "
            f"so one worker sees every event of an account; found {detail}"
        )
    return distinct.pop()
