"""One-row statements of the per-finding path, run on the DBAPI cursor.

The action layer runs ~9 statements per finding revision, each reading or writing a row or
two.  Through ``Connection.execute`` SQLAlchemy spends on each about ten times what the
database does (cache key, execution context, events, result objects): on the bench's
findings (SQLite), 0.9 ms per finding, two thirds of it in SQLAlchemy.  :func:`run` compiles
a statement once per dialect and shape of its parameters — with SQLAlchemy, so the SQL, the
parameter order and the type processing are SQLAlchemy's own — and then hands the SQL and
the parameters straight to the driver, in the caller's transaction.

Anything it does not reproduce falls back to ``Connection.execute``: several parameter
sets (SQLAlchemy batches those into one statement on PostgreSQL), Python-side column
defaults that are callables, parameters expanded at execution time.  Connection listeners
(``before_cursor_execute``, ``after_cursor_execute``) see its statements, with no execution
context (``None``).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql import ClauseElement

#: Compiled plans kept (statement, dialect, parameter names); the per-finding statements are
#: a few dozen module constants, so this bounds only a caller passing ad-hoc statements.
_MAX_PLANS = 512


class Rows:
    """The part of SQLAlchemy's ``Result`` the per-finding code uses."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise LookupError(f"expected at most one row, got {len(self._rows)}")
        return self._rows[0][0] if self._rows else None


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    compiled: Any  # sqlalchemy.engine.Compiled
    #: Parameter names in placeholder order (qmark/format/numeric styles); None: by name.
    order: tuple[str, ...] | None
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    row: type | None  # a namedtuple of the result columns; None: no rows
    #: Per result column, the type's result processor; empty when no column has one.
    results: tuple[Callable[[Any], Any] | None, ...]


_plans: dict[tuple[int, str, tuple[str, ...]], tuple[ClauseElement, _Plan | None]] = {}


def run(conn: Connection, stmt: Any, params: Mapping[str, Any] | None = None) -> Any:
    """``conn.execute(stmt, params)`` for one parameter set; the result as :class:`Rows`
    (or SQLAlchemy's own result where it fell back)."""
    params = params or {}
    dialect = conn.dialect
    key = (id(stmt), dialect.name, tuple(params))
    entry = _plans.get(key)
    if entry is None or entry[0] is not stmt:
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        entry = _plans[key] = (stmt, _plan(stmt, dialect, params))
    plan = entry[1]
    if plan is None:
        return conn.execute(stmt, params)
    values = plan.compiled.construct_params(params, _check=False)
    for name, process in plan.binds:
        values[name] = process(values[name])
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    sql, args = plan.sql, values if plan.order is None else [values[n] for n in plan.order]
    events = conn._has_events or conn.engine._has_events
    try:
        if events:  # tracing and tests listen here; without listeners this costs one test
            for listener in conn.dispatch.before_cursor_execute:
                sql, args = listener(conn, cursor, sql, args, None, False)
        cursor.execute(sql, args)
        if events:
            for listener in conn.dispatch.after_cursor_execute:
                listener(conn, cursor, sql, args, None, False)
        if plan.row is None:
            return Rows([])
        fetched = cursor.fetchall()
    finally:
        cursor.close()
    make, results = plan.row, plan.results
    if results:
        return Rows([make(*(v if p is None else p(v) for p, v in zip(results, r, strict=True))) for r in fetched])
    return Rows([make(*r) for r in fetched])


def _plan(stmt: Any, dialect: Any, params: Mapping[str, Any]) -> _Plan | None:
    compiled = stmt.compile(dialect=dialect, column_keys=list(params))
    if (
        getattr(compiled, "insert_prefetch", None)
        or getattr(compiled, "update_prefetch", None)
        or getattr(compiled, "post_compile_params", None)
        or getattr(compiled, "literal_execute_params", None)
        or getattr(compiled, "escaped_bind_names", None)
        or getattr(compiled, "_numeric_binds", False)
    ):
        return None
    binds = tuple((name, proc) for name, proc in compiled._bind_processors.items())
    columns = compiled._result_columns
    row: type | None = None
    results: tuple[Callable[[Any], Any] | None, ...] = ()
    if columns:
        row = _row_type([c.keyname for c in columns])
        results = tuple(c.type._cached_result_processor(dialect, None) for c in columns)
        if not any(results):
            results = ()
    elif getattr(compiled, "returning", None) or getattr(compiled, "effective_returning", None):
        return None  # RETURNING without result columns known: not ours to guess
    positional = compiled.positiontup
    return _Plan(compiled.string, compiled, tuple(positional) if positional is not None else None, binds, row,
                 results)


def _row_type(names: list[str]) -> type:
    """Result rows read by column name, like SQLAlchemy's ``Row``."""
    return namedtuple("Row", names, rename=True)  # type: ignore[misc]
