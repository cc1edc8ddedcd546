"""The Prometheus config and secmon's health alerts: promtool checks, unit tests, runbooks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from secmon.config import Config
from tests.deploy.conftest import (
    OPERATIONS,
    PROMETHEUS_YML,
    RULE_TESTS,
    RULES,
    alert_rules,
    api_settings,
    markdown_anchors,
    run,
    tool,
)


def test_promtool_check_config_accepts_the_shipped_config() -> None:
    """`promtool check config` accepts prometheus.yml and the rule files it loads."""
    result = run([tool("promtool"), "check", "config", str(PROMETHEUS_YML)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_check_rules_accepts_every_rule() -> None:
    """`promtool check rules` parses every expression and template of the rule file."""
    result = run([tool("promtool"), "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules`: every scenario fires exactly the expected alerts."""
    files = sorted(RULE_TESTS.glob("*.yml"))
    assert files, "no promtool test files in deploy/prometheus/tests"
    result = run([tool("promtool"), "test", "rules", *map(str, files)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    """Each alert has a scenario where it fires and one where it must stay silent."""
    fired: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS.glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fired == set(), "alerts never expected to fire"
    assert names - silent == set(), "alerts never expected to stay silent"


def test_unit_tests_catch_a_weakened_rule(tmp_path: Path) -> None:
    """The unit tests fail when a threshold is changed (they are not vacuous)."""
    promtool = tool("promtool")
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    text = RULES.read_text(encoding="utf-8")
    weakened = text.replace(
        'secmon_consumer_lag{job="secmon-worker"}) > 1000', 'secmon_consumer_lag{job="secmon-worker"}) > 100000'
    )
    assert weakened != text
    (tmp_path / "rules" / RULES.name).write_text(weakened, encoding="utf-8")
    for path in RULE_TESTS.glob("*.yml"):
        shutil.copy(path, tmp_path / "tests" / path.name)
    result = run([promtool, "test", "rules", *map(str, (tmp_path / "tests").glob("*.yml"))])
    assert result.returncode != 0
    assert "SecmonConsumerLagGrowing" in result.stdout + result.stderr


def test_every_alert_has_severity_service_summary_description_and_runbook() -> None:
    """Alerts carry the labels Alertmanager routes on and the annotations people read."""
    for rule in alert_rules():
        assert rule["labels"]["service"] == "secmon", rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        ann = rule["annotations"]
        assert ann.get("summary") and ann.get("description"), rule["alert"]
        assert re.fullmatch(r"docs/OPERATIONS\.md#[a-z0-9-]+", ann["runbook_url"]), rule["alert"]


def test_runbook_urls_point_at_sections_that_exist() -> None:
    """Every runbook_url anchor is a heading of docs/OPERATIONS.md, named after its alert."""
    anchors = markdown_anchors(OPERATIONS)
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/OPERATIONS.md"
        assert anchor == rule["alert"].lower()


def test_worker_alerts_select_the_worker_job() -> None:
    """The console/API exports the worker gauges at zero, so worker alerts must filter by job."""
    worker_only = ("secmon_ready", "secmon_consumer_lag", "secmon_checkpoint_age_seconds",
                   "secmon_backpressure_paused", "secmon_outbox_", "secmon_last_event_timestamp_seconds")  # fmt: skip
    for rule in alert_rules():
        for selector in re.findall(r"(secmon_[a-z_]+)(\{[^}]*\})?", rule["expr"]):
            name, labels = selector
            if name.startswith(worker_only):
                assert 'job="secmon-worker"' in labels, f'{rule["alert"]}: {name} without job="secmon-worker"'


def test_scrape_jobs_are_the_ones_the_rules_select(config: Config) -> None:
    """prometheus.yml scrapes jobs secmon-worker (on server.port) and secmon-api (on api.port)."""
    doc = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    rule_jobs = {m for r in alert_rules() for m in re.findall(r'job="([^"]+)"', r["expr"])}
    assert rule_jobs <= set(jobs)
    assert jobs["secmon-worker"]["dns_sd_configs"][0]["port"] == config.server.port
    assert jobs["secmon-api"]["static_configs"][0]["targets"] == [f"secmon-api:{api_settings(config).port}"]
    assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
