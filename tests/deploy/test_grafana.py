"""The Grafana dashboard and provisioning: structure, coverage, and its SQL on PostgreSQL.

The SQL panels run as the read-only role of deploy/postgres/reporting.sql against a real
PostgreSQL with secmon's schema; the PromQL panels are evaluated by a real Prometheus in
``test_live.py``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import ProgrammingError

from tests.deploy.conftest import DEPLOY, dashboard, dashboard_exprs, dashboard_targets

DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "secmon.yml"
REPORTING_SQL = DEPLOY / "postgres" / "reporting.sql"


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    """Panel ids are unique and every panel lies within the 24-column grid without overlap."""
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine


def test_queries_use_the_datasource_variables_provisioning_defines() -> None:
    """Targets use ${prometheus} or ${postgres}; those default to the provisioned uids."""
    provisioned = {d["uid"]: d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    variables = {v["name"]: v for v in dashboard()["templating"]["list"] if v["type"] == "datasource"}
    for name, var in variables.items():
        ds = provisioned[var["current"]["value"]]
        assert ds["type"] == var["query"], name
    for panel, target in dashboard_targets():
        uid = target["datasource"]["uid"]
        assert uid in {"${prometheus}", "${postgres}"}, panel["title"]
        assert ("rawSql" in target) == (uid == "${postgres}"), panel["title"]


def test_dashboard_covers_what_operators_need() -> None:
    """Throughput by topic, findings by kind/severity, lag, latency percentiles (processing
    and delivery), cases by category and SLA state, notification outcomes, DLQ by reason,
    outbox depth."""
    exprs = "\n".join(dashboard_exprs())
    sql = "\n".join(t["rawSql"] for _, t in dashboard_targets() if "rawSql" in t)
    needed = [
        r"sum by \(topic\) \(rate\(secmon_events_consumed_total",
        r"sum by \(kind\) \(rate\(secmon_findings_total", r"sum by \(severity\) \(rate\(secmon_findings_total",
        r"secmon_consumer_lag",
        r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(secmon_processing_latency_seconds_bucket",
        r"histogram_quantile\(0\.99, sum by \(le, channel\) \(rate\(secmon_delivery_latency_seconds_bucket",
        r"sum by \(category\) \(increase\(secmon_cases_opened_total",
        r"secmon_case_sla_breaches_total",
        r"sum by \(channel, outcome\) \(rate\(secmon_notifications_total",
        r"sum by \(reason\) \(rate\(secmon_dead_letters_total",
        r"max by \(channel\) \(secmon_outbox_depth",
    ]  # fmt: skip
    for pattern in needed:
        assert re.search(pattern, exprs), pattern
    assert "reporting.open_cases_by_sla()" in sql


def test_outbox_gauges_are_never_summed_across_workers() -> None:
    """secmon_outbox_* come from the shared table: panels take max per channel first."""
    for expr in dashboard_exprs():
        for m in re.finditer(r"(\w+) by \([^)]*\) \(secmon_outbox_\w+", expr):
            assert m.group(1) == "max", expr


def test_sql_panels_call_only_reporting_functions() -> None:
    """Grafana's SQL reads no table directly: only the reporting.* functions the role may run."""
    defined = set(re.findall(r"FUNCTION (reporting\.\w+)\(", REPORTING_SQL.read_text()))
    for panel, target in dashboard_targets():
        if "rawSql" in target:
            called = set(re.findall(r"FROM (\S+?)\(\)", target["rawSql"]))
            assert called and called <= defined, panel["title"]


# -- the SQL on a real PostgreSQL ------------------------------------------------------------
def _psql_url(sqlalchemy_url: str, user: str | None = None) -> str:
    url = sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")
    return url if user is None else re.sub(r"//[^@/]+@", f"//{user}@", url)


def _cases(now: int) -> list[dict[str, Any]]:
    base = {"priority": "P2", "title": "t", "first_kind": "k", "opened_ms": now - 7_200_000, "updated_ms": now,
            "reopened": 0, "findings": 1, "breached_ms": None, "paused_ms": None, "resolved_ms": None}  # fmt: skip
    return [
        base | {"category": "login_lockout", "status": "open", "due_ms": now + 9_000_000, "breached_ms": now - 60_000},
        base | {"category": "login_lockout", "status": "new", "due_ms": now - 60_000},
        base | {"category": "deposit_withdrawal", "status": "pending_user", "due_ms": now - 60_000, "paused_ms": now - 600_000},
        base | {"category": "account_security", "status": "open", "due_ms": now + 1_800_000},
        base | {"category": "account_security", "status": "open", "due_ms": now + 18_000_000},
        base | {"category": "platform_incident", "status": "resolved", "due_ms": now - 60_000, "resolved_ms": now},
    ]  # fmt: skip


@pytest.mark.integration
def test_sql_panels_run_as_the_read_only_role(pg_url: str) -> None:
    """On a database with secmon's schema, the Grafana role gets the panels' answers and
    cannot read the tables themselves."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql (PostgreSQL client) is not installed")
    from secmon.alerts.tables import support_case
    from secmon.store.db import open_database
    from secmon.store.schema import outbox

    role = f"grafana_t{uuid.uuid4().hex[:8]}"
    # Before the migrations, as in compose (initdb runs before secmon starts).
    subprocess.run([psql, _psql_url(pg_url), "-q", "-v", "ON_ERROR_STOP=1", "-v", f"grafana_user={role}",
                    "-v", "grafana_password=pw", "-f", str(REPORTING_SQL)], check=True, capture_output=True)  # fmt: skip
    owner = open_database(pg_url)
    now = int(time.time() * 1000)
    try:
        with owner.begin() as conn:
            conn.execute(insert(support_case), _cases(now))
            conn.execute(insert(outbox), [
                {"channel": "webhook.soc", "dedup_key": f"d{i}", "payload": b"{}", "status": status, "attempts": 1,
                 "next_attempt_ms": now, "created_ms": now - i * 1000}
                for i, status in enumerate(["pending", "pending", "dead", "sent"])
            ])  # fmt: skip
        grafana = create_engine(pg_url.replace("postgres@", f"{role}@"))
        try:
            with grafana.connect() as conn:
                answers = {}
                for panel, target in dashboard_targets():
                    if "rawSql" in target:
                        answers[panel["title"]] = [tuple(r) for r in conn.execute(text(target["rawSql"]))]
                with pytest.raises(ProgrammingError, match="permission denied"):
                    conn.execute(text("SELECT account_id FROM support_case"))
        finally:
            grafana.dispose()
        cases = answers["Active cases by category and SLA state (from PostgreSQL)"]
        assert cases == [
            ("account_security", "due within 1h", 1), ("account_security", "within SLA", 1),
            ("deposit_withdrawal", "paused (waiting for user)", 1), ("login_lockout", "breached", 2),
        ]  # fmt: skip
        undelivered = answers["Outbox messages not delivered (from PostgreSQL)"]
        assert [(c, s, n) for c, s, n, _ in undelivered] == [("webhook.soc", "dead", 1), ("webhook.soc", "pending", 2)]
    finally:
        owner.dispose()
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()
