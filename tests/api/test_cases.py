"""The case API: the queue sorted by SLA, a case with its evidence and timeline, the writes
(take, assign, comment, status, priority) and their audit rows; masked views for support."""

from __future__ import annotations

from sqlalchemy import select

from secmon.alerts.tables import audit_log
from tests.api.conftest import DELAYED, LOCKED, NOW, TRAVEL, World
from tests.helpers.events import HOUR


def test_the_queue_lists_active_cases_most_urgent_sla_first(world: World) -> None:
    r = world.client.get("/api/v1/cases", headers=world.auth("admin"))
    assert r.status_code == 200
    cases = r.json()
    assert [c["account_id"] for c in cases] == [LOCKED, TRAVEL, DELAYED]  # P2, P2 (opened later), P3
    assert [c["due_ms"] for c in cases] == sorted(c["due_ms"] for c in cases)
    assert all(c["due_in_ms"] == c["due_ms"] - NOW for c in cases)
    locked = cases[0]
    assert locked["category"] == "login_lockout" and locked["priority"] == "P2" and locked["findings"] == 2
    assert [c["account_id"] for c in world.client.get("/api/v1/cases?sort=-due", headers=world.auth("admin")).json()] \
        == [DELAYED, TRAVEL, LOCKED]  # fmt: skip


def test_filters_narrow_the_queue(world: World) -> None:
    h = world.auth("admin")
    get = lambda q: [c["account_id"] for c in world.client.get(f"/api/v1/cases?{q}", headers=h).json()]  # noqa: E731
    assert get("category=deposit_withdrawal") == [DELAYED]
    assert get("priority=P2") == [LOCKED, TRAVEL]
    assert get(f"account_id={TRAVEL}") == [TRAVEL]
    assert get("status=resolved") == []
    assert get("breached=true") == []
    world.clock.now = NOW + 5 * HOUR  # the P2 cases (4 h) are now overdue
    assert get("breached=true") == [LOCKED, TRAVEL]
    assert world.client.get("/api/v1/cases?status=bogus", headers=h).status_code == 422
    assert world.client.get("/api/v1/cases?limit=0", headers=h).status_code == 422


def test_a_case_has_its_evidence_in_plain_words_and_its_timeline(world: World) -> None:
    case = world.case_id(LOCKED)
    d = world.client.get(f"/api/v1/cases/{case}", headers=world.auth("security_analyst")).json()
    assert d["case"]["id"] == case and d["transitions"] == ["closed", "open", "pending_user", "resolved"]
    assert sorted(e["kind"] for e in d["evidence"]) == ["account_lockout", "brute_force"]  # linked in one batch
    brute = next(e for e in d["evidence"] if e["kind"] == "brute_force")
    assert brute["revision"] == 1 and brute["severity"] == "high"
    assert brute["summary"] == f"25 failed logins for {LOCKED} from 203.0.113.7 in 10 minutes"
    assert brute["key_numbers"] == {"failures": 25, "window_ms": 600_000, "threshold": 8}  # numbers only
    assert [e["type"] for e in d["timeline"]][:2] == ["opened", "finding_linked"]
    assert world.client.get("/api/v1/cases/999999", headers=world.auth("admin")).status_code == 404


def test_support_sees_masked_account_ids_and_ips_and_no_raw_evidence(world: World) -> None:
    case = world.case_id(LOCKED)
    queue = world.client.get("/api/v1/cases", headers=world.auth("support_agent")).json()
    assert {c["account_id"] for c in queue} == {"ac…34", "ac…55", "ac…77"}
    d = world.client.get(f"/api/v1/cases/{case}", headers=world.auth("support_agent")).json()
    text = str(d)
    assert LOCKED not in text and "203.0.113.7" not in text and "ev-brute_force" not in text
    brute = next(e for e in d["evidence"] if e["kind"] == "brute_force")
    assert brute["summary"] == "25 failed logins for ac…34 from 203.0.113.x in 10 minutes"
    assert brute["key_numbers"]["failures"] == 25
    linked = next(e for e in d["timeline"] if e["type"] == "finding_linked")
    assert linked["detail"]["account_id"] == "ac…34"
    analyst = world.client.get(f"/api/v1/cases/{case}", headers=world.auth("security_analyst")).json()
    assert analyst["case"]["account_id"] == LOCKED


def test_take_comment_and_resolve_are_recorded_with_the_actor(world: World) -> None:
    h = world.auth("support_agent")
    case = world.case_id(DELAYED)
    r = world.client.post(f"/api/v1/cases/{case}/take", headers=h)
    assert r.status_code == 200 and r.json()["assignee"] == "token:support_agent-1" and r.json()["status"] == "open"
    r = world.client.post(f"/api/v1/cases/{case}/comments", json={"text": "Told the user the deposit is on its way"},
                          headers=h)  # fmt: skip
    assert r.status_code == 201 and r.json()["detail"] == {"text": "Told the user the deposit is on its way"}
    r = world.client.post(f"/api/v1/cases/{case}/status", json={"status": "resolved", "note": "credited"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "resolved" and r.json()["resolved_ms"] == NOW
    again = world.client.post(f"/api/v1/cases/{case}/status", json={"status": "pending_user"}, headers=h)
    assert again.status_code == 409 and again.json()["error"] == "invalid_transition"
    timeline = world.client.get(f"/api/v1/cases/{case}", headers=h).json()["timeline"]
    mine = [(e["type"], e["actor"]) for e in timeline if e["actor"] != "secmon"]
    assert mine == [("assigned", "token:support_agent-1"), ("status", "token:support_agent-1"),
                    ("comment", "token:support_agent-1"), ("status", "token:support_agent-1")]  # fmt: skip
    with world.engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(audit_log).where(
            audit_log.c.object_type == "case", audit_log.c.object_id == str(case),
            audit_log.c.actor == "token:support_agent-1").order_by(audit_log.c.id))]  # fmt: skip
    assert actions == ["case.assigned", "case.status", "case.comment", "case.status"]
    trail = world.client.get(f"/api/v1/audit?object_id={case}", headers=world.auth("security_analyst")).json()
    assert [e["action"] for e in trail][:4] == ["case.status", "case.comment", "case.status", "case.assigned"]


def test_assign_unassign_priority_and_bad_input(world: World) -> None:
    case = world.case_id(TRAVEL)
    admin = world.auth("admin")
    r = world.client.post(f"/api/v1/cases/{case}/assign", json={"assignee": "token:dave"}, headers=admin)
    assert r.json()["assignee"] == "token:dave"
    assert world.client.post(f"/api/v1/cases/{case}/assign", json={}, headers=admin).json()["assignee"] is None
    r = world.client.post(f"/api/v1/cases/{case}/priority", json={"priority": "P1", "reason": "VIP account"},
                          headers=world.auth("security_analyst"))  # fmt: skip
    assert r.status_code == 200 and r.json()["priority"] == "P1" and r.json()["due_ms"] == NOW + HOUR
    for body in ({"text": ""}, {"text": "x" * 10_001}, {"text": "nul\x00"}, {"txt": "typo"}):
        assert world.client.post(f"/api/v1/cases/{case}/comments", json=body, headers=admin).status_code == 422
    assert world.client.post(f"/api/v1/cases/{case}/comments", json={"text": "   "}, headers=admin).status_code == 400
    assert world.client.post(f"/api/v1/cases/{case}/status", json={"status": "done"}, headers=admin).status_code == 422
    assert world.client.post("/api/v1/cases/0/take", headers=admin).status_code == 422
    assert world.client.post(f"/api/v1/cases/{2**60}/take", headers=admin).status_code == 422
