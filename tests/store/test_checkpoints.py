"""Checkpoints in SQLite and PostgreSQL: state and offsets saved together, restored exactly."""

from __future__ import annotations

from secmon.engine.packed import PACKED
from secmon.engine.task import TaskChanges, TaskMeta
from secmon.store.checkpoints import CheckpointStore
from secmon.store.db import open_database


def test_save_load_incremental_and_removals(db_url: str) -> None:
    engine = open_database(db_url)
    store = CheckpointStore(engine, "app")
    meta = TaskMeta(stream_ms=5, offsets={"auth.events/0": 10}, timers=[(99, "d", "k", "t")], origin_hw={"o": 3})
    with engine.begin() as conn:
        store.save(conn, [TaskChanges("account-0", meta, changed={"d": {"a": b"1", "b": b"2"}})], now_ms=1)
    with engine.begin() as conn:
        store.save(
            conn,
            [TaskChanges("account-0", TaskMeta(stream_ms=6, offsets={"auth.events/0": 12}),
                         changed={"d": {"a": b"3"}}, removed={"d": ["b"]})],
            now_ms=2,
        )
    loaded = store.load("account-0")
    assert loaded is not None
    got_meta, rows = loaded
    assert got_meta.offsets == {"auth.events/0": 12} and got_meta.stream_ms == 6
    assert rows == [("d", "a", b"3")]
    assert store.load("account-1") is None
    assert CheckpointStore(engine, "other-app").load("account-0") is None  # deployments are isolated
    assert store.updated_ms() == {"account-0": 2}


def test_large_checkpoints_round_trip_in_chunks(db_url: str) -> None:
    """More rows than one statement carries (PostgreSQL writes them as arrays, in chunks),
    binary values with NUL bytes, two tasks and two detectors; then an update of half."""
    engine = open_database(db_url)
    store = CheckpointStore(engine, "app")

    def rows(n: int, tag: bytes) -> dict[str, bytes]:
        return {f"acct-{i}": tag + b"\x00\xff" + i.to_bytes(4, "big") for i in range(n)}

    first = {"d1": rows(7_000, b"a"), "d2": rows(4_000, b"b")}
    with engine.begin() as conn:
        store.save(conn, [TaskChanges("account-0", TaskMeta(), changed=first),
                          TaskChanges("account-1", TaskMeta(), changed={"d1": rows(10, b"c")})], now_ms=1)  # fmt: skip
    update = {"d1": {k: b"new" for k in list(first["d1"])[::2]}}
    with engine.begin() as conn:
        store.save(conn, [TaskChanges("account-0", TaskMeta(), changed=update)], now_ms=2)
    loaded = store.load("account-0")
    assert loaded is not None
    got = {(d, k): v for d, k, v in loaded[1]}
    want = {(d, k): v for d, kv in first.items() for k, v in kv.items()} | {("d1", k): v for k, v in update["d1"].items()}
    assert got == want
    other = store.load("account-1")
    assert other is not None and len(other[1]) == 10


def test_a_purge_deletes_the_tasks_unpacked_rows_only(db_url: str) -> None:
    """The first packed checkpoint of a task restored from one-row-per-key rows."""
    engine = open_database(db_url)
    store = CheckpointStore(engine, "app")
    with engine.begin() as conn:
        store.save(conn, [TaskChanges("account-0", TaskMeta(), changed={"d1": {"a": b"1"}, "d2": {"a": b"2"}}),
                          TaskChanges("account-1", TaskMeta(), changed={"d1": {"b": b"3"}})], now_ms=1)  # fmt: skip
    with engine.begin() as conn:
        store.save(conn, [TaskChanges("account-0", TaskMeta(), changed={PACKED: {"a": b"12"}}, purge_unpacked=True)],
                   now_ms=2)
    loaded, other = store.load("account-0"), store.load("account-1")
    assert loaded is not None and loaded[1] == [(PACKED, "a", b"12")]
    assert other is not None and other[1] == [("d1", "b", b"3")]
