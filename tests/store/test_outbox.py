"""The outbox: idempotent enqueue, claims, retries, dead rows; concurrent claimers never
share a row on PostgreSQL (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import threading

from secmon.store.db import open_database
from secmon.store.outbox import DEAD, SENT, Outbox, OutboxMessage, enqueue


def _msgs(n: int, channel: str = "c") -> list[OutboxMessage]:
    return [OutboxMessage(channel, f"k{i}", f"p{i}".encode()) for i in range(n)]


def test_enqueue_is_idempotent_and_claims_in_order(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:
        assert enqueue(conn, _msgs(5), now_ms=100) == 5
    with engine.begin() as conn:
        assert enqueue(conn, _msgs(6), now_ms=200) == 1  # five were already there
    box = Outbox(engine, "w1")
    items = box.claim("c", 3, now_ms=300)
    assert [i.dedup_key for i in items] == ["k0", "k1", "k2"]
    assert [i.dedup_key for i in box.claim("c", 10, now_ms=300)] == ["k3", "k4", "k5"]
    assert box.claim("c", 10, now_ms=300) == []
    box.mark_sent([items[0].id], 400)
    box.mark_retry(items[1], "down", next_attempt_ms=1_000)
    box.mark_dead(items[2], "rejected")
    assert box.claim("c", 10, now_ms=999) == []
    assert [i.dedup_key for i in box.claim("c", 10, now_ms=1_000)] == ["k1"]
    counts = box.counts()
    assert counts[("c", SENT)] == 1 and counts[("c", DEAD)] == 1


def test_stale_inflight_rows_are_released(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:
        enqueue(conn, _msgs(2), now_ms=0)
    box = Outbox(engine, "dead-worker")
    claimed = box.claim("c", 10, now_ms=1_000)
    assert [i.id for i in box.stale_inflight("c", claimed_before_ms=1_001)] == [i.id for i in claimed]
    box.release([i.id for i in claimed])
    assert len(Outbox(engine, "w2").claim("c", 10, now_ms=2_000)) == 2


def test_concurrent_claimers_never_share_a_row(pg_url: str) -> None:
    engine = open_database(pg_url)
    with engine.begin() as conn:
        enqueue(conn, _msgs(400), now_ms=0)
    got: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    def claim_all(name: str) -> None:
        box = Outbox(engine, name)
        while items := box.claim("c", 7, now_ms=10):
            got[name].extend(i.id for i in items)

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = [i for ids in got.values() for i in ids]
    assert len(all_ids) == 400 and len(set(all_ids)) == 400
