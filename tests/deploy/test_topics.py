"""deploy/kafka/create_topics.py (the topic-init job) against the embedded Kafka broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic

from tests.deploy.conftest import CONFIG, CONFIG_ENV, DEPLOY

pytestmark = [pytest.mark.integration]
SCRIPT = DEPLOY / "kafka" / "create_topics.py"


def prefixed_config(tmp_path: Path, prefix: str) -> Path:
    """The shipped config with this test's own topic names (the broker is shared)."""
    doc: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    doc["kafka"]["topics"] = {k: f"{prefix}.{v}" for k, v in doc["kafka"]["topics"].items()}
    path = tmp_path / "secmon.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def create_topics(config: Path, bootstrap: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **CONFIG_ENV, "SECMON_KAFKA_BOOTSTRAP": bootstrap}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(config), "--replication-factor", "1"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        return {t: len(consumer.partitions_for_topic(t) or ()) for t in topics}
    finally:
        consumer.close()


def test_creates_every_topic_co_partitioned_and_is_idempotent(broker: str, tmp_path: Path) -> None:
    """All seven topics get kafka.partitions partitions; a second run changes nothing."""
    prefix = f"ti{uuid.uuid4().hex[:8]}"
    config = prefixed_config(tmp_path, prefix)
    first = create_topics(config, broker)
    assert first.returncode == 0, first.stderr
    declared = yaml.safe_load(CONFIG.read_text())["kafka"]["partitions"]
    names = [f"{prefix}.{t}" for t in ("auth.events", "wallet.events", "account.snapshots", "secmon.repartition",
                                       "secmon.findings", "secmon.dlq", "secmon.notifications")]  # fmt: skip
    assert partitions(broker, names) == dict.fromkeys(names, declared)
    assert first.stdout.count("(created)") == 7
    second = create_topics(config, broker)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("(exists)") == 7
    assert "co-partitioned with 6" in second.stdout


def test_refuses_inputs_that_are_not_co_partitioned(broker: str, tmp_path: Path) -> None:
    """An existing input topic with another partition count fails the job (exit 2) by name."""
    prefix = f"ti{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        admin.create_topics([NewTopic(f"{prefix}.wallet.events", num_partitions=3, replication_factor=1)])
    finally:
        admin.close()
    result = create_topics(prefixed_config(tmp_path, prefix), broker)
    assert result.returncode == 2
    assert f"{prefix}.wallet.events=3" in result.stderr
    assert "kafka.partitions is 6" in result.stderr
