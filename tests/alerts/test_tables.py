"""The action layer's tables: the migration creates exactly what the code declares, and
can be rolled back."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, inspect

from secmon.alerts import tables
from secmon.store.db import MIGRATIONS

ALERT_TABLES = [tables.support_case, tables.case_finding, tables.case_event, tables.audit_log,
                tables.account_profile, tables.user_notification, tables.not_me_token, tables.alert_state]  # fmt: skip


def test_migration_matches_the_declared_tables_and_downgrades(engine: Engine) -> None:
    insp = inspect(engine)
    for table in ALERT_TABLES:
        assert {c["name"] for c in insp.get_columns(table.name)} == {c.name for c in table.columns}, table.name
        pk = set(insp.get_pk_constraint(table.name)["constrained_columns"])
        assert pk == {c.name for c in table.primary_key.columns}, table.name
    uniques: set[tuple[str | None, ...]] = {tuple(u["column_names"]) for u in insp.get_unique_constraints("support_case")}
    uniques |= {tuple(i["column_names"]) for i in insp.get_indexes("support_case") if i["unique"]}
    assert ("open_key",) in uniques  # one active case per problem is enforced by the database
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001_core")
    assert not set(inspect(engine).get_table_names()) & {t.name for t in ALERT_TABLES}
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert {t.name for t in ALERT_TABLES} <= set(inspect(engine).get_table_names())
