"""The shipped monitoring against a running secmon: a real ``secmon run`` worker on the
embedded broker and a real ``secmon api serve``, scraped by the real Prometheus binary with
deploy/prometheus/prometheus.yml (targets rewritten to loopback) and its rules, alerting to
the real Alertmanager with the shipped config.  Then the worker is stopped with SIGTERM, as
Kubernetes and compose do, within the documented shutdown bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from secmon.net import free_port
from secmon.runtime.broker import wait_for_port
from tests.deploy.conftest import (
    PROMETHEUS_YML,
    RULES,
    alert_rules,
    as_promql,
    dashboard_exprs,
    shutdown_bound_s,
    tool,
)
from tests.helpers.events import MINUTE, T0, ev, geo
from tests.integration.harness import Deployment, Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


def loopback_prometheus_config(ports: dict[str, int], alertmanager_port: int) -> dict[str, Any]:
    """The shipped prometheus.yml with every target on loopback and 1 s intervals; the job
    names, metrics paths and rule files are the shipped ones."""
    doc = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    doc["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    doc["rule_files"] = [str(PROMETHEUS_YML.parent / f) for f in doc["rule_files"]]
    doc["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]
    assert {j["job_name"] for j in doc["scrape_configs"]} == set(ports), "a new scrape job needs a test target"
    for job in doc["scrape_configs"]:
        for sd in ("dns_sd_configs", "static_configs"):
            job.pop(sd, None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    return doc


@pytest.fixture
def deployment(broker: str, tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(bootstrap=broker, tmp=tmp_path, store_url=f"sqlite:///{tmp_path / 'secmon.db'}", partitions=2)
    d.create_topics()
    try:
        yield d
    finally:
        d.stop_all()


def start_api(deployment: Deployment, worker_config: Path, port: int) -> subprocess.Popen[bytes]:
    log = (deployment.tmp / "api.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "secmon.cli", "api", "serve", "--config", str(worker_config), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
    )  # fmt: skip
    deployment.procs.append(proc)
    return proc


def start_prometheus(tmp_path: Path, config: dict[str, Any], port: int) -> subprocess.Popen[bytes]:
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    with (tmp_path / "prometheus.log").open("wb") as log:
        return subprocess.Popen(
            [tool("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def traffic() -> list[dict[str, Any]]:
    """A few valid events on all three input topics (and so some findings)."""
    events = [ev("account.snapshot", f"w{i}", T0) for i in range(4)]
    events += [ev("login.failed", "w1", T0 + i * 1000, ip="203.0.113.7", geo=geo("DE")) for i in range(12)]
    events += [
        ev("deposit.initiated", "w2", T0 + MINUTE),
        ev("login.succeeded", "w3", T0 + 2 * MINUTE, ip="198.51.100.4"),
    ]
    return events


def test_prometheus_scrapes_secmon_with_the_shipped_config_and_rules(
    deployment: Deployment, alertmanager: dict[str, Any], tmp_path: Path
) -> None:
    """Targets up (workers, console/API, Prometheus, Alertmanager), every rule loaded and
    evaluating cleanly, every dashboard query valid, secmon's series present, the probe
    paths answering, and SIGTERM → final checkpoint → exit 0 within the shutdown bound."""
    tool("prometheus")
    worker: Worker = deployment.start_worker("w1")
    api_port, prom_port = free_port(), free_port()
    start_api(deployment, deployment.tmp / "w1.yaml", api_port)
    worker.wait_ready()
    assert worker.get("/healthz")[0] == 200 and worker.get("/readyz")[0] == 200
    api_up = wait_until(lambda: _status(f"http://127.0.0.1:{api_port}/healthz") == 200, 60)
    assert api_up, (deployment.tmp / "api.log").read_text()[-3000:]
    deployment.produce(traffic(), raw=[("auth.events", b"k", b"not json")])

    ports = {"secmon-worker": worker.port, "secmon-api": api_port, "prometheus": prom_port,
             "alertmanager": alertmanager["port"]}  # fmt: skip
    prom = start_prometheus(tmp_path, loopback_prometheus_config(ports, alertmanager["port"]), prom_port)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        wait_for_port("127.0.0.1", prom_port, timeout_s=30)
        assert wait_until(lambda: _status(f"{base}/-/ready") == 200, 30)

        def targets() -> dict[str, str]:
            return {t["labels"]["job"]: t["health"] for t in _get(f"{base}/api/v1/targets")["data"]["activeTargets"]}

        assert wait_until(lambda: set(targets().values()) == {"up"} and len(targets()) == len(ports), 30), targets()

        shipped = yaml.safe_load(RULES.read_text(encoding="utf-8"))

        def rule_groups() -> list[dict[str, Any]]:
            return _get(f"{base}/api/v1/rules")["data"]["groups"]

        def evaluated() -> bool:
            rules = [r for g in rule_groups() for r in g["rules"]]
            return bool(rules) and all(not r["lastEvaluation"].startswith("0001") for r in rules)

        assert wait_until(evaluated, 30)
        groups = rule_groups()
        assert sorted(g["name"] for g in groups) == sorted(g["name"] for g in shipped["groups"])
        loaded = {r["name"]: r for g in groups for r in g["rules"]}
        assert set(loaded) == {r["alert"] for r in alert_rules()}
        assert {n: r["health"] for n, r in loaded.items() if r["health"] != "ok"} == {}

        ams = _get(f"{base}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        assert [a["url"] for a in ams] == [f"http://127.0.0.1:{alertmanager['port']}/api/v2/alerts"]

        def value(query: str) -> float | None:
            q = urllib.parse.quote(query)
            result = _get(f"{base}/api/v1/query?query={q}")["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        assert wait_until(lambda: value('sum(secmon_events_consumed_total{job="secmon-worker"})') == len(traffic()), 60)
        assert value('sum(secmon_dead_letters_total{job="secmon-worker", reason="not_json"})') == 1
        assert value('secmon_ready{job="secmon-worker"}') == 1
        assert value('count(secmon_api_requests_total{job="secmon-api"})') is not None

        for expr in dashboard_exprs():
            q = urllib.parse.quote(as_promql(expr))
            answer = _get(f"{base}/api/v1/query?query={q}")
            assert answer["status"] == "success", expr
    finally:
        prom.terminate()
        prom.wait(15)

    started = time.monotonic()
    assert worker.terminate(timeout_s=shutdown_bound_s()) == 0
    took = time.monotonic() - started
    assert took < shutdown_bound_s()
    assert worker.get("/healthz")[0] == 0  # the ops server is gone with the process
