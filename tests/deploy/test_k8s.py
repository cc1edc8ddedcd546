"""Kubernetes manifests: kustomize builds them, schemas accept them, and they agree with
secmon's config (ports, probe paths, partitions, shutdown bound, secrets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from secmon.config import Config, load_config
from tests.deploy.conftest import (
    CONFIG,
    CONFIG_ENV,
    K8S,
    api_settings,
    load_yaml_docs,
    run,
    shutdown_bound_s,
    tool,
)


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) → manifest for every resource kustomization.yaml lists."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    out = {}
    for rel in kustomization["resources"]:
        for doc in load_yaml_docs(K8S / rel):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def pod_spec(name: str) -> dict[str, Any]:
    return resources()[("Deployment", name)]["spec"]["template"]["spec"]


def container(deployment: str) -> dict[str, Any]:
    (c,) = pod_spec(deployment)["containers"]
    return c


def mounted_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Config:
    """The config the pods read: the ConfigMap's secmon.yaml, loaded by secmon."""
    text = resources()[("ConfigMap", "secmon-config")]["data"]["secmon.yaml"]
    path = tmp_path / "secmon.yaml"
    path.write_text(text)
    for key, value in CONFIG_ENV.items():
        monkeypatch.setenv(key, value)
    return load_config(path)


def port_number(c: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    return int(match)


def test_kustomize_builds_the_manifests() -> None:
    """`kubectl kustomize deploy/k8s` renders every resource into namespace secmon."""
    result = run([tool("kubectl"), "kustomize", str(K8S)])
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["Namespace", "ServiceAccount", "ConfigMap", "ConfigMap", "Job", "Deployment",
                            "Deployment", "PodDisruptionBudget", "PodDisruptionBudget", "Service"])  # fmt: skip
    assert all(d["metadata"].get("namespace") == "secmon" for d in docs if d["kind"] != "Namespace")
    images = {c["image"] for d in docs if d["kind"] in {"Deployment", "Job"}
              for c in d["spec"]["template"]["spec"]["containers"]}  # fmt: skip
    assert images == {"secmon:0.1.0"}


def test_manifests_pass_kubernetes_schema_validation(tmp_path: Path) -> None:
    """kubernetes-validate --strict accepts the rendered manifests and the Secret template."""
    validate = tool("kubernetes-validate")
    rendered = run([tool("kubectl"), "kustomize", str(K8S)])
    assert rendered.returncode == 0, rendered.stderr
    out = tmp_path / "rendered.yaml"
    out.write_text(rendered.stdout)
    result = run([validate, "--strict", str(out), str(K8S / "secret.template.yaml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed" not in result.stdout.lower()


def test_configmap_carries_the_shipped_config_verbatim() -> None:
    """data.secmon.yaml is deploy/config/secmon.yaml, so compose and Kubernetes run one config."""
    data = resources()[("ConfigMap", "secmon-config")]["data"]["secmon.yaml"]
    assert data == CONFIG.read_text(encoding="utf-8")


def test_worker_probes_hit_the_ops_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Liveness/startup on /healthz and readiness on /readyz, at server.port of the mounted config."""
    config = mounted_config(monkeypatch, tmp_path)
    c = container("secmon-worker")
    for probe, path in (("livenessProbe", "/healthz"), ("startupProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert port_number(c, get["port"]) == config.server.port, probe
    assert config.server.host == "0.0.0.0"
    annotations = resources()[("Deployment", "secmon-worker")]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(config.server.port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_api_probes_and_service_hit_the_console(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The console/API's probes, annotations and Service target api.port of the mounted config."""
    settings = api_settings(mounted_config(monkeypatch, tmp_path))
    c = container("secmon-api")
    assert c["args"][:2] == ["api", "serve"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] == "/healthz"
        assert port_number(c, c[probe]["httpGet"]["port"]) == settings.port
    assert settings.host == "0.0.0.0" and settings.metrics
    meta = resources()[("Deployment", "secmon-api")]["spec"]["template"]["metadata"]
    assert meta["annotations"]["prometheus.io/port"] == str(settings.port)
    service = resources()[("Service", "secmon-api")]["spec"]
    assert port_number(c, service["ports"][0]["targetPort"]) == settings.port
    assert service["selector"].items() <= meta["labels"].items()
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SECMON_HEALTH_PORT"] == str(settings.port)


def test_worker_replicas_do_not_exceed_partitions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """replicas <= kafka.partitions of the mounted config (the count topic-init creates)."""
    config = mounted_config(monkeypatch, tmp_path)
    spec = resources()[("Deployment", "secmon-worker")]["spec"]
    assert 1 < spec["replicas"] <= config.kafka.partitions
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    job = resources()[("Job", "secmon-topic-init")]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["python", "/opt/secmon/create_topics.py"]
    assert job["args"] == ["--config", "/etc/secmon/secmon.yaml"]
    assert not config.kafka.create_topics


def test_termination_grace_covers_the_documented_shutdown_bound() -> None:
    """terminationGracePeriodSeconds >= the bound of SIGTERM → final checkpoint → exit."""
    assert pod_spec("secmon-worker")["terminationGracePeriodSeconds"] >= shutdown_bound_s()


@pytest.mark.parametrize("name", ["secmon-worker", "secmon-api"])
def test_pods_are_locked_down_and_sized(name: str) -> None:
    """Non-root, read-only root FS, no privilege escalation or capabilities, writable /tmp, resources."""
    spec = pod_spec(name)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["automountServiceAccountToken"] is False
    c = container(name)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"/tmp", "/etc/secmon"} <= {m["mountPath"] for m in c["volumeMounts"]}
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]


def test_disruption_budgets_select_their_deployments() -> None:
    """Each Deployment has a PDB allowing one voluntary disruption at a time."""
    for name in ("secmon-worker", "secmon-api"):
        pdb = resources()[("PodDisruptionBudget", name)]["spec"]
        labels = resources()[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert pdb["maxUnavailable"] == 1
        assert pdb["selector"]["matchLabels"].items() <= labels.items()


def test_secret_refs_exist_in_the_template_which_holds_no_values() -> None:
    """Every secretKeyRef names a key of secret.template.yaml; the template's values are empty,
    and it is not applied by kustomize."""
    (template,) = load_yaml_docs(K8S / "secret.template.yaml")
    keys = set(template["stringData"])
    assert all(v == "" for v in template["stringData"].values())
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "secret.template.yaml" not in kustomization["resources"]
    refs = set()
    for (kind, _), doc in resources().items():
        if kind in {"Deployment", "Job"}:
            for c in doc["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == template["metadata"]["name"]
                        refs.add(ref["key"])
    assert refs <= keys
    assert {"SECMON_STORE_URL", "SECMON_MFA_HASH_KEY", "SECMON_NOT_ME_SIGNING_KEY"} <= refs


def test_every_variable_the_config_requires_is_provided() -> None:
    """The pods set every ${VAR} without default that the config needs (from env or Secret)."""
    import re

    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for v in node.values() for s in strings(v)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return [node] if isinstance(node, str) else []

    values = strings(yaml.safe_load(CONFIG.read_text(encoding="utf-8")))
    required = {m for v in values for m in re.findall(r"\$\{(\w+)\}", v)}
    assert "SECMON_STORE_URL" in required
    env_cm = resources()[("ConfigMap", "secmon-env")]["data"]
    for (kind, name), doc in resources().items():
        if kind in {"Deployment", "Job"}:
            c = doc["spec"]["template"]["spec"]["containers"][0]
            provided = {e["name"] for e in c.get("env", [])}
            if any(s.get("configMapRef", {}).get("name") == "secmon-env" for s in c.get("envFrom", [])):
                provided |= set(env_cm)
            assert required <= provided, f"{name} lacks {required - provided}"


def test_podmonitor_names_the_jobs_the_rules_select() -> None:
    """The optional PodMonitor scrapes the named ports and relabels job to secmon-worker/-api."""
    (pm,) = load_yaml_docs(K8S / "optional" / "podmonitor.yaml")
    endpoints = {e["port"]: e for e in pm["spec"]["podMetricsEndpoints"]}
    assert {p["name"] for p in container("secmon-worker")["ports"]} == {"ops"}
    assert {p["name"] for p in container("secmon-api")["ports"]} == {"http"}
    assert endpoints["ops"]["relabelings"] == [{"targetLabel": "job", "replacement": "secmon-worker"}]
    assert endpoints["http"]["relabelings"] == [{"targetLabel": "job", "replacement": "secmon-api"}]
