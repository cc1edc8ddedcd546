"""Provision secmon's Kafka topics: the topic-init job of the compose stack and Kubernetes.

    python create_topics.py --config /etc/secmon/secmon.yaml [--replication-factor 1]

Reads the topic names, the connection (bootstrap, SASL/SSL) and ``kafka.partitions`` from
secmon's own config, so the job and the workers cannot disagree.  The three input topics
and ``secmon.repartition`` get ``kafka.partitions`` partitions each (co-partitioning: the
worker refuses to start otherwise); the output topics (findings, dead letters, user
notifications) get the same count.  Missing topics are created with the retention below;
existing ones are left as they are, but the job fails (exit 2) if the inputs and the
repartition topic are not co-partitioned with the declared count, because adding partitions
to a keyed topic moves accounts between partitions (see docs/OPERATIONS.md, "Partitions").

Shipped in the image as ``/opt/secmon/create_topics.py``; runs with the image's Python.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from secmon.config import Config, load_config
from secmon.sources.kafka import TopologyError, make_admin, make_consumer, partition_counts, wait_for_broker

DAY_MS = 86_400_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="secmon YAML config (topics, connection, kafka.partitions)")
    p.add_argument("--replication-factor", type=int, help="default: kafka.replication_factor of the config")
    p.add_argument(
        "--input-retention-ms",
        type=int,
        default=7 * DAY_MS,
        help="inputs and secmon.repartition: the replay window (default 7 days)",
    )
    p.add_argument("--findings-retention-ms", type=int, default=30 * DAY_MS, help="secmon.findings (default 30 days)")
    p.add_argument("--dlq-retention-ms", type=int, default=30 * DAY_MS, help="secmon.dlq (default 30 days)")
    p.add_argument(
        "--notifications-retention-ms", type=int, default=7 * DAY_MS, help="secmon.notifications (default 7 days)"
    )
    return p.parse_args(argv)


def plan(config_path: str, args: argparse.Namespace) -> tuple[Config, int, int, dict[str, dict[str, str]]]:
    """The config, partition count, replication factor and per-topic settings to create."""
    config = load_config(config_path)
    kafka = config.kafka
    topics = kafka.topics
    rf = args.replication_factor or kafka.replication_factor
    base = {"cleanup.policy": "delete"}
    if rf >= 3:
        base["min.insync.replicas"] = "2"
    wanted = {t: base | {"retention.ms": str(args.input_retention_ms)} for t in (*topics.inputs(), topics.repartition)}
    wanted[topics.findings] = base | {"retention.ms": str(args.findings_retention_ms)}
    wanted[topics.dlq] = base | {"retention.ms": str(args.dlq_retention_ms)}
    wanted[topics.notifications] = base | {"retention.ms": str(args.notifications_retention_ms)}
    return config, kafka.partitions, rf, wanted


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config, partitions, rf, wanted = plan(args.config, args)
    kafka = config.kafka
    wait_for_broker(kafka)
    admin = make_admin(kafka)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            # Another job racing us is fine: the counts are verified below.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=rf, topic_configs=wanted[t])
                     for t in missing]
                )  # fmt: skip
    finally:
        admin.close()
    consumer = make_consumer(kafka, group=False)
    try:
        counts = partition_counts(consumer, list(wanted))
    except TopologyError as exc:
        print(f"topic-init: {exc}", file=sys.stderr)
        return 1
    finally:
        consumer.close()
    for topic in wanted:
        state = "created" if topic in missing else "exists"
        print(f"{topic}: {counts[topic]} partitions ({state})")
    topics = kafka.topics
    copartitioned = [*topics.inputs(), topics.repartition]
    wrong = {t: counts[t] for t in copartitioned if counts[t] != partitions}
    if wrong:
        detail = ", ".join(f"{t}={n}" for t, n in sorted(wrong.items()))
        print(
            f"topic-init: {detail}, but kafka.partitions is {partitions}: the inputs and {topics.repartition} "
            "must all have kafka.partitions partitions (see docs/OPERATIONS.md, Partitions)",
            file=sys.stderr,
        )
        return 2
    print(f"topic-init: OK ({len(wanted)} topics; inputs and repartition co-partitioned with {partitions})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
