"""The findings feed (latest revisions, filters), one finding with its revision history and
cases, and the live stream (Server-Sent Events) with its resume cursor."""

from __future__ import annotations

import orjson
from sqlalchemy import insert

from secmon.api.findings import Cursor, FindingQuery
from secmon.api.routes.findings import StreamTail
from secmon.contract import encode_finding
from secmon.store.schema import finding as finding_table
from tests.api.conftest import LOCKED, NOW, TRAVEL, World, commit_all, finding
from tests.helpers.events import HOUR, T0


def _ids(world: World, query: str = "") -> list[tuple[str, str]]:
    r = world.client.get(f"/api/v1/findings?{query}", headers=world.auth("security_analyst"))
    assert r.status_code == 200, r.text
    return [(f["kind"], f["account_id"]) for f in r.json()["items"]]


def test_the_feed_shows_each_findings_latest_revision_newest_first(world: World) -> None:
    feed = _ids(world)
    assert feed[0] == ("impossible_travel", TRAVEL)  # detected T0+4h; ties (same detection time) by id
    assert set(feed[1:3]) == {("account_lockout", LOCKED), ("brute_force", LOCKED)}  # T0+3h
    assert set(feed[3:]) == {("credential_stuffing", None), ("deposit_delayed", "acct-200777")}  # T0+2h
    items = world.client.get("/api/v1/findings", headers=world.auth("admin")).json()["items"]
    brute = next(f for f in items if f["kind"] == "brute_force")
    assert brute["revision"] == 1 and brute["severity"] == "high" and brute["explanation"]["failures"] == 25
    assert brute["subject"] == {"ip": "203.0.113.7"} and len(brute["evidence"]) == 3


def test_filters_by_kind_severity_account_status_and_time(world: World) -> None:
    assert set(_ids(world, "kind=brute_force&kind=account_lockout")) == {("account_lockout", LOCKED),
                                                                         ("brute_force", LOCKED)}  # fmt: skip
    assert _ids(world, "severity=medium") == [("deposit_delayed", "acct-200777")]
    assert len(_ids(world, "min_severity=high")) == 4
    assert _ids(world, "min_severity=high&severity=medium") == []
    assert _ids(world, f"account_id={TRAVEL}") == [("impossible_travel", TRAVEL)]
    assert _ids(world, "status=resolved") == []
    since = "2026-11-01T03:00:00Z"  # brute_force rev 1 and account_lockout were detected at T0+3h
    assert set(_ids(world, f"since={since}&until=2026-11-01T04:00:00%2B00:00")) == {("account_lockout", LOCKED),
                                                                                 ("brute_force", LOCKED)}  # fmt: skip
    assert _ids(world, "limit=2&offset=1") == _ids(world)[1:3]
    h = world.auth("admin")
    assert world.client.get("/api/v1/findings?since=2026-11-01T03:00:00", headers=h).status_code == 422  # naive
    assert world.client.get("/api/v1/findings?kind=DROP%20TABLE", headers=h).status_code == 422


def test_a_finding_has_its_revision_history_and_its_cases(world: World) -> None:
    brute = next(f for f in world.client.get("/api/v1/findings?kind=brute_force", headers=world.auth("admin"))
                 .json()["items"])  # fmt: skip
    d = world.client.get(f"/api/v1/findings/{brute['finding_id']}", headers=world.auth("security_analyst")).json()
    assert d["finding"]["revision"] == 1
    assert [(r["revision"], r["severity"]) for r in d["revisions"]] == [(0, "medium"), (1, "high")]
    assert d["revisions"][0]["summary"].startswith("9 failed logins")
    assert d["case_ids"] == [world.case_id(LOCKED)]
    assert world.client.get("/api/v1/findings/doesnotexist", headers=world.auth("admin")).status_code == 404


def _events(body: str) -> list[dict[str, str]]:
    out = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if fields.get("event") == "finding":
            out.append(fields)
    return out


def test_the_stream_sends_revisions_in_order_and_resumes_after_a_cursor(world: World) -> None:
    h = world.auth("security_analyst")
    with world.client.stream("GET", "/api/v1/findings/stream?after=0:0:0&limit=6", headers=h) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-store"
        body = r.read().decode()
    events = _events(body)
    kinds = [orjson.loads(e["data"])["kind"] for e in events]
    # Commit order (one batch per minute); within a batch, by finding id.
    assert kinds[0] == "brute_force" and sorted(kinds[1:3]) == ["credential_stuffing", "deposit_delayed"]
    assert sorted(kinds[3:5]) == ["account_lockout", "brute_force"] and kinds[5] == "impossible_travel"
    cursors = [e["id"] for e in events]
    assert cursors == sorted(cursors, key=lambda c: (int(c.split(":")[0]), c.split(":")[1], int(c.split(":")[2])))
    with world.client.stream("GET", "/api/v1/findings/stream?limit=2", headers={**h, "Last-Event-ID": cursors[3]}) as r:
        resumed = [e["id"] for e in _events(r.read().decode())]
    assert resumed == cursors[4:6]
    with world.client.stream("GET", "/api/v1/findings/stream?after=0:0:0&limit=1&min_severity=high&kind=impossible_travel",
                             headers=h) as r:  # fmt: skip
        (only,) = _events(r.read().decode())
    assert orjson.loads(only["data"])["kind"] == "impossible_travel"
    assert world.client.get("/api/v1/findings/stream?after=nonsense", headers=h).status_code == 422
    assert world.client.get("/api/v1/findings/stream", headers={**h, "Last-Event-ID": "x"}).status_code == 422


def test_a_live_stream_delivers_findings_committed_after_it_started(world: World) -> None:
    """From the head: nothing old; a finding committed by the action layer arrives; then it ends."""
    import threading

    h = world.auth("security_analyst")
    result: dict[str, str] = {}

    def read() -> None:
        with world.client.stream("GET", "/api/v1/findings/stream?limit=1", headers=h) as r:
            result["body"] = r.read().decode()

    reader = threading.Thread(target=read)
    reader.start()
    new = finding("mfa_bruteforce", "acct-9", severity="high", t=T0 + 5 * HOUR, summary="31 wrong 2FA codes")
    import time

    time.sleep(0.5)  # the stream has taken its start position
    commit_all(world.config, world.engine, [[new]], NOW)
    reader.join(20)
    assert not reader.is_alive()
    (event,) = _events(result["body"])
    assert orjson.loads(event["data"])["finding_id"] == new.finding_id


def test_the_tail_catches_a_revision_committed_late_with_an_older_timestamp(world: World) -> None:
    """Two workers can commit out of created_ms order: the grace window still picks it up, once."""
    q = FindingQuery(world.engine)
    head = q.head()
    assert head is not None
    tail = StreamTail(q, head, {}, grace_ms=5_000)
    assert tail.poll() == []
    late = finding("weak_password", "acct-late", t=T0 + 6 * HOUR)
    with world.engine.begin() as conn:  # as a slower worker whose clock read was 2 s earlier
        conn.execute(insert(finding_table).values(
            finding_id=late.finding_id, revision=0, kind=late.kind, severity=late.severity, status="open",
            account_id=late.account_id, detected_ms=T0 + 6 * HOUR, record=encode_finding(late).decode(),
            created_ms=head.created_ms - 2_000))  # fmt: skip
    assert [r.finding_id for r in tail.poll()] == [late.finding_id]
    assert tail.poll() == []
    assert Cursor.decode(Cursor(5, "abc", 2).encode()) == Cursor(5, "abc", 2)
    assert Cursor.decode("1:2") is None and Cursor.decode("x:y:z") is None
