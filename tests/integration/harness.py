"""Run real ``secmon run`` worker processes against the embedded broker, and read topics.

Each test gets its own topic names and consumer group (a prefix), so tests share one broker
without seeing each other's records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from secmon.net import free_ports
from tests.helpers.events import topic_of
from tests.helpers.waiting import wait_until as _wait_until

INPUTS = ("auth.events", "wallet.events", "account.snapshots")


@dataclass
class Deployment:
    """One secmon deployment (topics, group, store) on a shared broker."""

    bootstrap: str
    tmp: Path
    store_url: str
    partitions: int = 4
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    extra: dict[str, Any] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    @property
    def topics(self) -> dict[str, str]:
        return {
            "auth": self.topic("auth.events"),
            "wallet": self.topic("wallet.events"),
            "snapshots": self.topic("account.snapshots"),
            "findings": self.topic("secmon.findings"),
            "dlq": self.topic("secmon.dlq"),
            "repartition": self.topic("secmon.repartition"),
            "notifications": self.topic("secmon.notifications"),
        }

    def create_topics(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics(
                [NewTopic(t, num_partitions=self.partitions, replication_factor=1) for t in self.topics.values()]
            )
        finally:
            admin.close()

    def config(self, name: str, port: int) -> Path:
        cfg: dict[str, Any] = {
            "app_id": self.prefix,
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "group_id": f"{self.prefix}-group",
                "topics": self.topics,
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 2000,
                "partitions": self.partitions,
                "max_poll_records": 500,
            },
            "store": {"url": self.store_url},
            "engine": {"checkpoint_interval_ms": 500, "idle_timeout_ms": 3000},
            "delivery": {"lease_ms": 3000},
            "server": {"port": port},
            "logging": {"format": "text"},
        }
        for section, values in self.extra.items():
            cfg.setdefault(section, {}).update(values)
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start_worker(self, name: str, *args: str, ports: int = 1) -> Worker:
        """``secmon run`` with this deployment's config (``args`` added); ``ports``: how many
        consecutive free ports from the worker's own (``--workers N`` uses N)."""
        port = free_ports(ports)
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "secmon.cli", "run", "--config", str(self.config(name, port)), *args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SECMON_WORKER_ID": f"{self.prefix}-{name}"},
        )
        self.procs.append(proc)
        return Worker(name, proc, port, self.tmp / f"{name}.log")

    def produce(self, events: Iterable[dict[str, Any]], raw: Iterable[tuple[str, bytes | None, bytes]] = ()) -> int:
        """Send events in order.  Their times are historic and they go out in a burst, where a
        topic's batch could land before an older event of the same account on another topic
        (minutes of event time apart; live, where event time follows the wall clock, a few
        ms) and the worker would rightly take that topic as caught up.  So an account's
        switch to another topic waits until what was sent before it is stored."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        n = 0
        last_topic: dict[str, str] = {}
        for e in events:
            topic = topic_of(e)
            account = e["account_id"]
            if last_topic.get(account, topic) != topic:
                producer.flush()
                last_topic.clear()
            last_topic[account] = topic
            producer.send(self.topic(topic), key=account.encode(), value=json.dumps(e).encode())
            n += 1
        for topic, key, value in raw:
            producer.send(self.topic(topic), key=key, value=value)
            n += 1
        producer.flush()
        producer.close()
        return n

    def read(self, name: str, *, settle_s: float = 0.0) -> list[Any]:
        """Every record of a topic (all partitions), from the beginning to the end now."""
        time.sleep(settle_s)
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        try:
            topic = self.topic(name)
            tps = [TopicPartition(topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            out: list[Any] = []
            remaining = {tp for tp in tps if ends[tp] > 0}
            deadline = time.monotonic() + 30
            while remaining and time.monotonic() < deadline:
                for tp, recs in consumer.poll(timeout_ms=500).items():
                    out.extend(recs)
                    if recs and recs[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            return out
        finally:
            consumer.close()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, ""
        except OSError:
            return 0, ""

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} not ready: {self.log.read_text()[-3000:]}")

    def metric(self, name: str, **labels: str) -> float:
        status, text = self.get("/metrics")
        assert status == 200
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout_s: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)


def wait_until(predicate: Callable[[], Any], timeout_s: float = 60, interval_s: float = 0.3) -> bool:
    return _wait_until(predicate, timeout_s, interval_s)
