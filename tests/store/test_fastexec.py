"""``secmon.store.fastexec``: the same rows and writes as ``Connection.execute``, on SQLite and
PostgreSQL, for the statements of the per-finding path; SQLAlchemy where it would differ."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, event, select

from secmon.alerts import cases, notify, profiles
from secmon.alerts.tables import case_finding, support_case
from secmon.store import fastexec
from secmon.store.db import _insert_ignore, _upsert, insert_ignore, open_database
from secmon.store.schema import outbox

CASE = {
    "category": "account_security", "priority": "p2", "status": "open", "account_id": "a1", "incident_key": None,
    "open_key": "k1", "parent_id": None, "title": "t", "first_kind": "brute_force", "assignee": None,
    "opened_ms": 1, "updated_ms": 1, "due_ms": 5, "reopened": 0, "findings": 0,
}  # fmt: skip
LINK = {
    "finding_id": "f1", "kind": "brute_force", "severity": "high", "status": "open", "revision": 0,
    "account_id": "a1", "incident_key": None, "summary": "s", "linked_ms": 1, "resolved_ms": None,
}  # fmt: skip


@pytest.fixture
def engine(db_url: str) -> Engine:
    return open_database(db_url)


def _both(conn: Any, stmt: Any, params: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    fast = [tuple(r) for r in fastexec.run(conn, stmt, params)]
    return fast, [tuple(r) for r in conn.execute(stmt, params)]


def test_rows_and_writes_are_sqlalchemy_s(engine: Engine) -> None:
    with engine.begin() as conn:
        inserted = insert_ignore(conn, support_case, [CASE], returning=(support_case.c.id,))
        assert len(inserted) == 1 and inserted[0].id >= 1
        assert insert_ignore(conn, support_case, [CASE], returning=(support_case.c.id,)) == []  # ignored
        case_id = inserted[0].id
        fastexec.run(conn, _upsert(conn.dialect.name, case_finding, ("case_id", "finding_id")),
                     {"case_id": case_id, **LINK})  # fmt: skip
        fastexec.run(conn, cases._UPDATE_CASE, {"case_id_": case_id, "updated_ms": 7, "findings": 1})
        for stmt, params in [
            (cases._CASE_BY_ID, {"case_id": case_id}),
            (cases._CASE_BY_OPEN_KEY, {"open_key": "k1"}),
            (cases._CASES_OF_FINDING, {"finding_id": "f1"}),
            (cases._LINKED_MS, {"case_id": case_id, "finding_id": "f1"}),
            (cases._RECENTLY_RESOLVED["account"], {"account": "a1", "category": "account_security", "since": 0}),
            (notify._LATEST_CASE_OF_FINDING, {"finding_id": "f1"}),
            (notify._DECIDED, {"dedup_key": "nothing"}),
            (notify._SENT_COUNTS, {"account_id": "a1", "template": "x", "since_kind": 0, "since_day": 0, "since": 0}),
            (profiles._LOCALE_OF, {"account_id": "a1"}),
        ]:
            fast, slow = _both(conn, stmt, params)
            assert fast == slow, stmt
        row = fastexec.run(conn, cases._CASE_BY_ID, {"case_id": case_id}).one()
        assert (row.id, row.findings, row.updated_ms, row.status) == (case_id, 1, 7, "open")  # by column name
        assert fastexec.run(conn, cases._CASES_OF_FINDING, {"finding_id": "f1"}).all()[0].open_key == "k1"
        assert fastexec.run(conn, notify._LATEST_CASE_OF_FINDING, {"finding_id": "f1"}).scalar_one() == case_id
        assert fastexec.run(conn, notify._DECIDED, {"dedup_key": "nothing"}).first() is None
        message = {"channel": "c", "dedup_key": "d", "msg_key": None, "payload": b"\x00\xffbytes", "status": "pending",
                   "attempts": 0, "next_attempt_ms": 1, "created_ms": 1}  # fmt: skip
        assert len(fastexec.run(conn, _insert_ignore(conn.dialect.name, outbox, (outbox.c.id,)), message).all()) == 1
    with engine.connect() as conn:  # committed with the transaction it ran in
        assert conn.execute(select(outbox.c.payload)).scalar_one() == b"\x00\xffbytes"
        assert conn.execute(select(support_case.c.findings)).scalar_one() == 1


def test_a_rolled_back_transaction_takes_its_statements_along(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        insert_ignore(conn, support_case, [CASE], returning=(support_case.c.id,))
        raise RuntimeError("batch failed")
    with engine.connect() as conn:
        assert conn.execute(select(support_case.c.id)).all() == []


def test_what_it_cannot_reproduce_goes_to_sqlalchemy(engine: Engine) -> None:
    expanding = select(support_case.c.id).where(support_case.c.status.in_(bindparam("statuses", expanding=True)))
    with engine.begin() as conn:
        insert_ignore(conn, support_case, [CASE], returning=(support_case.c.id,))
        result = fastexec.run(conn, expanding, {"statuses": ["open", "new"]})
        assert not isinstance(result, fastexec.Rows) and len(result.all()) == 1


def test_connection_listeners_see_its_statements(engine: Engine) -> None:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.begin() as conn:
            fastexec.run(conn, profiles._LOCALE_OF, {"account_id": "a1"})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [s for s in seen if "account_profile" in s]
