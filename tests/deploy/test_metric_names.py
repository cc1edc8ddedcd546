"""Every ``secmon_*`` metric that a rule, a panel or the runbooks name is one secmon exports."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import (
    DEPLOY,
    OPERATIONS,
    all_rules,
    dashboard_exprs,
    exported_metric_names,
    metric_names_in,
)


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_metric_names()


def test_exported_names_include_the_exposition_suffixes(exported: set[str]) -> None:
    """The reference set is what /metrics shows: counters with _total, histograms by bucket."""
    assert {"secmon_events_consumed_total", "secmon_ready", "secmon_processing_latency_seconds_bucket",
            "secmon_delivery_latency_seconds_bucket", "secmon_api_requests_total"} <= exported  # fmt: skip
    assert "secmon_events_consumed" not in exported


def test_the_extractor_finds_names_and_ignores_neighbours() -> None:
    """Names inside PromQL are found; label values, recording-rule names and env vars are not."""
    text = (
        'sum by (le) (rate(secmon_x_bucket{job="secmon-worker"}[5m])) / secmon:recorded:sum '
        "+ SECMON_STORE_URL + secmon_outbox_* + on(channel) secmon_y"
    )
    assert metric_names_in(text) == {"secmon_x_bucket", "secmon_y"}


def test_a_misspelt_metric_would_fail(exported: set[str]) -> None:
    """The check is real: a plausible name secmon does not export is reported as unknown."""
    assert metric_names_in("rate(secmon_events_consumed[5m])") - exported == {"secmon_events_consumed"}


def test_alert_and_recording_rules_name_only_exported_metrics(exported: set[str]) -> None:
    """Rule expressions (alerts and any recording rules) use only exported sample names."""
    used = set().union(*(metric_names_in(r["expr"]) for r in all_rules()))
    assert used, "no secmon metric found in the rules"
    assert used - exported == set()


def test_dashboard_panels_name_only_exported_metrics(exported: set[str]) -> None:
    """Every PromQL query of the Grafana dashboard uses only exported sample names."""
    used = set().union(*(metric_names_in(e) for e in dashboard_exprs()))
    assert len(used) >= 20
    assert used - exported == set()


def test_other_deploy_files_and_the_runbooks_name_only_exported_metrics() -> None:
    """All deploy files (YAML, JSON, descriptions) and docs/OPERATIONS.md name real metrics;
    prose may name a histogram by its family name."""
    known = exported_metric_names(families=True)
    files = [p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml", ".json", ".md"}] + [OPERATIONS]
    unknown = {(p.name, n) for p in files for n in metric_names_in(p.read_text(encoding="utf-8")) - known}
    assert unknown == set()
