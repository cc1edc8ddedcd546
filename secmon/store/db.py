"""The database: SQLite by default (the workers of one host), PostgreSQL by URL (several hosts).

``open_database`` creates the engine with the right settings per dialect and runs the
Alembic migrations to head (under an advisory lock on PostgreSQL, so workers starting
together migrate once).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite

from secmon.store.fastexec import run

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_361_202_611  # arbitrary, fixed advisory-lock id


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned per dialect (SQLite: WAL, busy timeout; PostgreSQL: pool pre-ping)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            # Let SQLAlchemy, not the driver, open transactions (see _begin_immediate).
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            # Take the write lock up front: a deferred transaction that reads, then writes,
            # fails with "database is locked" (no busy wait) when another connection wrote in
            # between; an immediate one waits its turn under busy_timeout instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, **kwargs)


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest Alembic revision (once, however many workers start)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _sqlite_file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (PostgreSQL uses an advisory lock)."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:":
        yield
        return
    with open(f"{db}.migrate.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_database(url: str, **kwargs: Any) -> Engine:
    engine = create_db_engine(url, **kwargs)
    migrate(engine)
    return engine


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: Iterable[Any] = ()):  # type: ignore[no-untyped-def]
    """INSERT … ON CONFLICT DO NOTHING for many rows; with ``returning``, the rows inserted."""
    if not rows:
        return []
    cols = tuple(returning)
    result = _execute_rows(conn, _insert_ignore(conn.dialect.name, table, cols), rows)
    return list(result) if cols else []


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE every other column, for many rows."""
    if not rows:
        return
    _execute_rows(conn, _upsert(conn.dialect.name, table, tuple(keys)), rows)


def _execute_rows(conn: Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> Any:
    """One row (a case, a message: the per-finding path) goes straight to the driver
    (:mod:`secmon.store.fastexec`); several go through SQLAlchemy, which batches them."""
    if len(rows) == 1:
        return run(conn, stmt, rows[0])
    return conn.execute(stmt, list(rows))


# Statements are built once per table and shape: building one costs more than running it
# (SQLAlchemy then also reuses its compiled form without recomputing the cache key).
@functools.cache
def _insert_ignore(dialect: str, table: Table, returning: tuple[Any, ...]):  # type: ignore[no-untyped-def]
    stmt = _insert(dialect, table).on_conflict_do_nothing()
    return stmt.returning(*returning) if returning else stmt


@functools.cache
def _upsert(dialect: str, table: Table, keys: tuple[str, ...]):  # type: ignore[no-untyped-def]
    stmt = _insert(dialect, table)
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=update)


def _insert(dialect: str, table: Table):  # type: ignore[no-untyped-def]
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect}")
