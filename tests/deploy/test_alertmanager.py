"""Alertmanager: the shipped config validates, routes by kind and severity, and inhibits.

The live test runs the real ``prometheus-alertmanager`` with the shipped config (receiver
host, token file and group waits rewritten for a loopback run) in front of the real
``deploy/alertmanager/alert_sink.py``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import ALERTMANAGER_YML, alert_rules, run, tool


def route(*labels: str) -> str:
    result = run([tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}", *labels])
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_amtool_check_config_accepts_the_shipped_config() -> None:
    """`amtool check-config` validates routes, receivers and inhibit rules."""
    result = run([tool("amtool"), "check-config", str(ALERTMANAGER_YML)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["service=secmon", "severity=critical", "alertname=SecmonNoWorkerReady"], "secmon-pager"),
        (["service=secmon", "severity=warning", "alertname=SecmonOutboxBacklog"], "secmon-tickets"),
        (["source=secmon", "severity=critical", "alertname=account_takeover"], "security-findings"),
        (["source=secmon", "severity=info", "alertname=weak_password"], "security-findings"),
    ],
)
def test_routes_send_health_by_severity_and_findings_to_the_soc(labels: list[str], receiver: str) -> None:
    """Critical health alerts page, warnings make tickets, findings never reach the pager."""
    assert route(*labels) == receiver


def test_every_rule_severity_has_a_route() -> None:
    """Each severity the rules use routes to a receiver of its own."""
    for severity in {r["labels"]["severity"] for r in alert_rules()}:
        assert route("service=secmon", f"severity={severity}").startswith("secmon-")


def test_inhibit_rules_name_only_alerts_that_exist() -> None:
    """Inhibit rules refer to alert names defined in the rule file."""
    doc = yaml.safe_load(ALERTMANAGER_YML.read_text(encoding="utf-8"))
    names = {r["alert"] for r in alert_rules()}
    for rule in doc["inhibit_rules"]:
        for matcher in [*rule["source_matchers"], *rule["target_matchers"]]:
            if matcher.startswith("alertname"):
                value = matcher.split("=", 1)[1].lstrip("~").strip('"')
                assert set(value.split("|")) <= names, matcher


# -- live ----------------------------------------------------------------------------------
def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _alert(**labels: str) -> dict[str, Any]:
    return {"labels": labels, "annotations": {"summary": labels["alertname"]}}


def _received(sink_log: Path) -> list[dict[str, Any]]:
    lines = [ln for ln in sink_log.read_text().splitlines() if ln.startswith("{")]
    return [json.loads(ln) for ln in lines]


@pytest.mark.integration
def test_alertmanager_routes_and_inhibits_with_the_shipped_config(alertmanager: dict[str, Any]) -> None:
    """Real Alertmanager: pager/tickets/SOC receive what they should; inhibited alerts are
    suppressed and never delivered; the sink rejects a request without the token."""
    health = {"service": "secmon"}
    alerts = [
        _alert(alertname="SecmonWorkerDown", severity="warning", instance="w1:9464", **health),
        _alert(alertname="SecmonWorkerNotReady", severity="warning", instance="w1:9464", **health),
        _alert(alertname="SecmonWorkerNotReady", severity="warning", instance="w2:9464", **health),
        _alert(alertname="SecmonSinkDeliveriesDead", severity="critical", channel="webhook.soc", **health),
        _alert(alertname="SecmonSinkFailing", severity="warning", channel="webhook.soc", **health),
        _alert(alertname="SecmonSinkFailing", severity="warning", channel="notify.push", **health),
        _alert(alertname="account_takeover", severity="critical", source="secmon", finding_id="f1", detector="ato"),
    ]
    assert _post(f"{alertmanager['url']}/api/v2/alerts", alerts) == 200
    expected = {
        ("secmon-tickets", "SecmonWorkerDown", "w1:9464"),
        ("secmon-tickets", "SecmonWorkerNotReady", "w2:9464"),
        ("secmon-pager", "SecmonSinkDeliveriesDead", "webhook.soc"),
        ("secmon-tickets", "SecmonSinkFailing", "notify.push"),
        ("security-findings", "account_takeover", "f1"),
    }

    def got() -> set[tuple[str, str, str]]:
        out = set()
        for line in _received(alertmanager["sink_log"]):
            lb = line["labels"]
            out.add(
                (line["receiver"], lb["alertname"], lb.get("instance") or lb.get("channel") or lb.get("finding_id"))
            )
        return out

    deadline = time.monotonic() + 30
    while got() != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert got() == expected
    state = {(a["labels"]["alertname"], a["labels"].get("instance") or a["labels"].get("channel") or "-"):
             a["status"] for a in _get(f"{alertmanager['url']}/api/v2/alerts")}  # fmt: skip
    assert state[("SecmonWorkerNotReady", "w1:9464")]["state"] == "suppressed"
    assert state[("SecmonWorkerNotReady", "w1:9464")]["inhibitedBy"]
    assert state[("SecmonSinkFailing", "webhook.soc")]["state"] == "suppressed"
    assert state[("account_takeover", "-")]["state"] == "active"
    assert _post(f"{alertmanager['sink']}/x", {"alerts": []}, {"Authorization": "Bearer wrong"}) == 401
