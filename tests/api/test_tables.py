"""The API's tables: the migration creates exactly what the code declares, and rolls back."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import inspect

from secmon.api import tables
from secmon.store.db import MIGRATIONS, open_database

API_TABLES = [tables.api_token, tables.api_session, tables.totp_state, tables.verification_attempt]


def test_migration_matches_the_declared_tables_and_downgrades(db_url: str) -> None:
    engine = open_database(db_url)
    insp = inspect(engine)
    for table in API_TABLES:
        assert {c["name"] for c in insp.get_columns(table.name)} == {c.name for c in table.columns}, table.name
        pk = set(insp.get_pk_constraint(table.name)["constrained_columns"])
        assert pk == {c.name for c in table.primary_key.columns}, table.name
    assert "ix_finding_created" in {i["name"] for i in insp.get_indexes("finding")}
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002_alerts")
    names = set(inspect(engine).get_table_names())
    assert not names & {t.name for t in API_TABLES} and "support_case" in names
    assert "ix_finding_created" not in {i["name"] for i in inspect(engine).get_indexes("finding")}
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert {t.name for t in API_TABLES} <= set(inspect(engine).get_table_names())
    engine.dispose()
