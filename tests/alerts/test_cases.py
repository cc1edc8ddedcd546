"""Support cases: one per problem, SLA clocks, timeline, audit, platform incidents, the console API."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from secmon.alerts.cases import CaseNotFound, InvalidArgument, InvalidTransition
from secmon.alerts.tables import audit_log, case_event, support_case
from secmon.contract import Subject
from secmon.metrics import Metrics
from tests.alerts.conftest import NOW, Clock, committer, config, finding, layer_for
from tests.helpers.events import HOUR, MINUTE, T0

DAY = 24 * HOUR


def outage(key: str = "wdfail:bank_rejected:SEPA", *, status: str = "open", revision: int = 0, t: int = T0):
    _, reason, network = key.split(":")
    return finding("withdrawal_outage", None, severity="high", key=f"{key}:{t}", status=status, revision=revision,
                   explanation={"outage_key": key, "reason": reason, "network": network},
                   subject=Subject(reason=reason, network=network))  # fmt: skip


def wd_failures(account: str, key: str = "wdfail:bank_rejected:SEPA", severity: str = "medium"):
    _, reason, network = key.split(":")
    return finding("withdrawal_failures", account, severity=severity, key=f"{account}:wf",
                   explanation={"outage_key": key, "reason": reason, "owner": "platform", "failures": 3},
                   subject=Subject(reason=reason, network=network, tx_id="wd-9"))  # fmt: skip


def count(engine: Engine, table, *where) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_later_findings_join_the_open_case_of_the_same_account_and_category(engine: Engine) -> None:
    """Two delayed deposits of one account: one case; another account: its own case."""
    metrics = Metrics()
    layer = layer_for(engine, metrics=metrics)
    c = committer(engine, layer)
    c.commit([finding("deposit_delayed", key="a:dp-1"), finding("deposit_delayed", key="a:dp-2")], [], None, NOW)
    c.commit([finding("deposit_delayed", "acct-2", key="b:dp-1")], [], None, NOW)
    cases = layer.case_service.list_cases(sort="opened")
    assert [(x.account_id, x.category, x.findings, x.status, x.priority) for x in cases] == [
        ("acct-1", "deposit_withdrawal", 2, "new", "P3"),
        ("acct-2", "deposit_withdrawal", 1, "new", "P3"),
    ]
    assert cases[0].due_ms == NOW + DAY  # P3: one business day (NOW is a Wednesday)
    assert metrics.registry.get_sample_value("secmon_cases_opened_total", {"category": "deposit_withdrawal"}) == 2


def test_a_more_urgent_finding_raises_the_priority_and_pulls_the_due_time_in(engine: Engine) -> None:
    layer = layer_for(engine)
    c = committer(engine, layer)
    c.commit([finding("deposit_delayed", key="a:1")], [], None, NOW)
    c.commit([finding("deposit_delayed", severity="high", key="a:2")], [], None, NOW + MINUTE)
    (case,) = layer.case_service.list_cases()
    assert case.priority == "P2" and case.due_ms == NOW + MINUTE + 4 * HOUR
    types = [e.type for e in layer.case_service.get_case(case.id).timeline]
    assert types == ["opened", "finding_linked", "priority", "finding_linked"]


def test_case_resolves_itself_when_the_detector_resolves_its_last_finding(engine: Engine) -> None:
    """The deposit arrives: the case is resolved by ``secmon``, with the timeline saying why."""
    metrics = Metrics()
    layer = layer_for(engine, metrics=metrics)
    c = committer(engine, layer)
    c.commit([finding("deposit_delayed", key="a:1"), finding("deposit_delayed", key="a:2")], [], None, NOW)
    c.commit([finding("deposit_delayed", key="a:1", status="resolved", revision=1)], [], None, NOW + HOUR)
    (case,) = layer.case_service.list_cases()
    assert case.status == "new"  # one deposit still missing
    c.commit([finding("deposit_delayed", key="a:2", status="resolved", revision=1)], [], None, NOW + 2 * HOUR)
    detail = layer.case_service.get_case(case.id)
    assert detail.case.status == "resolved" and detail.case.resolved_ms == NOW + 2 * HOUR
    assert [f.status for f in detail.findings] == ["resolved", "resolved"]
    assert detail.timeline[-1].type == "status" and detail.timeline[-1].actor == "secmon"
    assert detail.timeline[-1].detail["to"] == "resolved"
    assert (
        metrics.registry.get_sample_value(
            "secmon_cases_resolved_total", {"category": "deposit_withdrawal", "by": "detector"}
        )
        == 1
    )


def test_a_new_finding_soon_after_resolution_reopens_later_ones_open_a_new_case(engine: Engine) -> None:
    layer = layer_for(engine)
    c = committer(engine, layer)
    c.commit([finding("deposit_delayed", key="a:1")], [], None, NOW)
    c.commit([finding("deposit_delayed", key="a:1", status="resolved", revision=1)], [], None, NOW + HOUR)
    c.commit([finding("deposit_delayed", key="a:2")], [], None, NOW + 2 * HOUR)
    (case,) = layer.case_service.list_cases()
    assert case.status == "open" and case.reopened == 1 and case.findings == 2
    c.commit([finding("deposit_delayed", key="a:2", status="resolved", revision=1)], [], None, NOW + 3 * HOUR)
    c.commit([finding("deposit_delayed", key="a:3")], [], None, NOW + 3 * HOUR + 2 * DAY)
    assert [x.status for x in layer.case_service.list_cases(sort="opened")] == ["resolved", "new"]


def test_platform_incident_groups_the_accounts_hit_by_an_outage(engine: Engine) -> None:
    """Accounts failing before the outage is recognised are adopted; later ones join the
    incident; its resolution resolves their cases and names every account."""
    layer = layer_for(engine)
    store = layer.cases
    with engine.begin() as conn:
        early = store.on_finding(conn, wd_failures("early"), layer.policy.match(wd_failures("early")).case, NOW)
        opened = store.on_finding(conn, outage(), layer.policy.match(outage()).case, NOW + MINUTE)
        late = store.on_finding(
            conn, wd_failures("late"), layer.policy.match(wd_failures("late")).case, NOW + 2 * MINUTE
        )
        other = wd_failures("other", "wdfail:chain_error:TRON")
        own = store.on_finding(conn, other, layer.policy.match(other).case, NOW + 3 * MINUTE)
    assert early[0].opened and opened[0].opened and own[0].opened
    assert late[0].joined_incident and late[0].case_id == opened[0].case_id
    incident = layer.case_service.get_case(opened[0].case_id)
    assert incident.case.category == "platform_incident" and incident.case.account_id is None
    assert incident.case.priority == "P1" and incident.case.title == "Withdrawal outage: bank_rejected on SEPA"
    assert incident.children == [early[0].case_id]
    assert {f.account_id for f in incident.findings} == {None, "late"}
    with engine.begin() as conn:
        done = store.on_finding(conn, outage(status="resolved", revision=1), None, NOW + HOUR)
    assert done[0].resolved and done[0].members == ("early", "late")
    statuses = {x.account_id: x.status for x in layer.case_service.list_cases()}
    assert statuses == {None: "resolved", "early": "resolved", "other": "new"}


def test_console_api_assign_comment_transitions_and_audit(engine: Engine) -> None:
    clock = Clock()
    layer = layer_for(engine, clock=clock)
    committer(engine, layer).commit([finding("account_lockout", severity="medium")], [], None, NOW)
    svc = layer.case_service
    (case,) = svc.list_cases(status="active")
    assigned = svc.assign(case.id, "alice", actor="lead@support")
    assert assigned.assignee == "alice" and assigned.status == "open"
    entry = svc.comment(case.id, "Called the user; waiting for ID", actor="alice")
    assert entry.type == "comment" and entry.detail == {"text": "Called the user; waiting for ID"}
    clock.now = NOW + HOUR
    paused = svc.change_status(case.id, "pending_user", actor="alice")
    assert paused.sla_paused
    clock.now = NOW + 3 * HOUR
    resumed = svc.change_status(case.id, "open", actor="alice", note="user replied")
    assert resumed.due_ms == case.due_ms + 2 * HOUR  # two hours waiting for the user don't count
    with pytest.raises(InvalidTransition):
        svc.change_status(case.id, "new", actor="alice")
    svc.change_status(case.id, "resolved", actor="alice")
    svc.change_status(case.id, "closed", actor="alice")
    reopened = svc.change_status(case.id, "open", actor="bob")
    assert reopened.status == "open" and reopened.reopened == 1
    trail = svc.audit_trail(case.id)
    assert {a.actor for a in trail} == {"secmon", "lead@support", "alice", "bob"}
    writes = count(engine, case_event, case_event.c.case_id == case.id)
    assert count(engine, audit_log, audit_log.c.object_id == str(case.id)) == writes  # every write audited
    with pytest.raises(CaseNotFound):
        svc.get_case(9999)
    with pytest.raises(InvalidArgument):
        svc.comment(case.id, "   ", actor="alice")
    with pytest.raises(InvalidArgument):
        svc.list_cases(sort="random")


def test_reopen_refused_while_another_case_is_active_for_the_same_problem(engine: Engine) -> None:
    layer = layer_for(engine)
    c = committer(engine, layer)
    c.commit([finding("deposit_delayed", key="a:1")], [], None, NOW)
    (first,) = layer.case_service.list_cases()
    layer.case_service.change_status(first.id, "closed", actor="alice")
    c.commit([finding("deposit_delayed", key="a:2")], [], None, NOW + MINUTE)
    with pytest.raises(InvalidTransition, match="already active"):
        layer.case_service.change_status(first.id, "open", actor="alice")


def test_list_filters_and_sorts_by_sla(engine: Engine) -> None:
    layer = layer_for(engine)
    c = committer(engine, layer)
    c.commit([finding("deposit_delayed", "a", key="a:1"),
              finding("account_takeover", "b", severity="critical", key="b:1"),
              finding("mfa_weak_posture", "c", severity="high", key="c:1")], [], None, NOW)  # fmt: skip
    svc = layer.case_service
    assert [x.account_id for x in svc.list_cases(sort="due")] == ["b", "a", "c"]
    assert [x.account_id for x in svc.list_cases(sort="-due")] == ["c", "a", "b"]
    assert [x.priority for x in svc.list_cases(sort="priority")] == ["P1", "P3", "P4"]
    assert [x.account_id for x in svc.list_cases(category="account_security", sort="due")] == ["b", "c"]
    assert [x.account_id for x in svc.list_cases(account_id="a")] == ["a"]
    assert svc.list_cases(status=["resolved", "closed"]) == []


def test_sla_sweep_records_breaches_once_escalates_and_closes_old_resolved_cases(engine: Engine) -> None:
    metrics = Metrics()
    layer = layer_for(engine, metrics=metrics)
    c = committer(engine, layer)
    c.commit([finding("deposit_delayed", "a", key="a:1"), finding("account_takeover", "b", severity="critical")],
             [], None, NOW)  # fmt: skip
    svc = layer.case_service
    assert svc.sweep(NOW + 30 * MINUTE).breached == []
    first = svc.sweep(NOW + 2 * HOUR)  # the P1 (1 h) is late
    (p1,) = svc.list_cases(account_id="b")
    assert first.breached == [p1.id] and first.escalated == []  # P1 cannot go higher
    assert svc.sweep(NOW + 3 * HOUR).breached == []  # recorded once
    assert svc.list_cases(breached=True)[0].id == p1.id
    second = svc.sweep(NOW + 2 * DAY)  # the P3 (1 business day) is late now: escalated to P2
    (p3,) = svc.list_cases(account_id="a")
    assert second.breached == [p3.id] and second.escalated == [p3.id]
    assert p3.priority == "P2" and p3.due_ms == NOW + 2 * DAY + 4 * HOUR
    assert (
        metrics.registry.get_sample_value(
            "secmon_case_sla_breaches_total", {"category": "account_security", "priority": "P1"}
        )
        == 1
    )
    assert [e.type for e in svc.get_case(p3.id).timeline][-2:] == ["sla_breached", "priority"]
    svc.change_status(p1.id, "resolved", actor="alice")
    assert svc.sweep(NOW + 2 * DAY + 8 * DAY).closed == [p1.id]


def test_report_counts_breaches_and_median_time_to_resolve(engine: Engine) -> None:
    clock = Clock(NOW + 10 * DAY)
    layer = layer_for(engine, clock=clock)
    c = committer(engine, layer)
    for i, resolve_after in enumerate((HOUR, 3 * HOUR, 2 * DAY)):
        c.commit([finding("deposit_delayed", f"u{i}", key=f"u{i}:1")], [], None, NOW)
        c.commit([finding("deposit_delayed", f"u{i}", key=f"u{i}:1", status="resolved", revision=1)], [], None,
                 NOW + resolve_after)  # fmt: skip
    c.commit([finding("account_lockout", "v", severity="high")], [], None, NOW)
    report = layer.case_service.report(NOW - DAY)
    dw = next(x for x in report.categories if x.category == "deposit_withdrawal")
    assert (dw.opened, dw.resolved, dw.active, dw.breached) == (3, 3, 0, 1)
    assert dw.median_resolve_ms == 3 * HOUR and round(dw.breach_rate, 3) == 0.333
    ll = next(x for x in report.categories if x.category == "login_lockout")
    assert (ll.opened, ll.active, ll.breached) == (1, 1, 1)  # still open, long past its P2 due time
    assert report.total.opened == 4 and report.kinds == {"deposit_delayed": 3, "account_lockout": 1}
    assert layer.case_service.report(NOW + DAY).total.opened == 0


def test_one_active_case_per_problem_even_when_two_writers_race(engine: Engine) -> None:
    """The unique ``open_key`` makes the second writer join the first writer's case."""
    layer = layer_for(engine)
    other = layer_for(engine)
    rule = layer.policy.match(outage())
    with engine.begin() as conn:
        a = layer.cases.on_finding(conn, outage(t=T0), rule.case, NOW)
    with engine.begin() as conn:
        b = other.cases.on_finding(conn, outage(t=T0 + MINUTE), rule.case, NOW)
    assert a[0].opened and b == []
    assert count(engine, support_case) == 1


def test_disabled_cases_open_nothing(engine: Engine) -> None:
    layer = layer_for(engine, config(cases={"enabled": False}))
    committer(engine, layer).commit([finding("account_takeover", severity="critical")], [], None, NOW)
    assert count(engine, support_case) == 0


def test_a_batch_writes_its_timeline_at_the_end_in_its_own_transaction(engine: Engine) -> None:
    """Timeline and audit rows of a batch are written together at its end (one statement
    each), in the batch's transaction; a console request on another thread is not batched."""
    import threading

    layer = layer_for(engine)
    c = committer(engine, layer)
    c.commit([finding("deposit_delayed", key="a:1")], [], None, NOW)
    (case,) = layer.case_service.list_cases()
    store = layer.case_service.store
    linked = case_event.c.type == "finding_linked"
    with engine.connect() as conn:
        with store.batched_timeline(conn):
            store.link(conn, store._get(conn, case.id), finding("deposit_delayed", key="a:2"), None, NOW,
                       event="finding_linked")  # fmt: skip
            assert conn.execute(select(func.count()).select_from(case_event).where(linked)).scalar_one() == 1
            other: list[object] = []
            seen = threading.Thread(target=lambda: other.append(getattr(store._local, "rows", None)))
            seen.start()
            seen.join()
            assert other == [None]  # another thread (the console) writes directly
        assert conn.execute(select(func.count()).select_from(case_event).where(linked)).scalar_one() == 2
        conn.rollback()  # the batch fails: its timeline goes with it
    assert count(engine, case_event, linked) == 1
    layer.case_service.comment(case.id, "called the user", actor="agent:ann")
    c.commit([finding("deposit_delayed", key="a:3")], [], None, NOW + MINUTE)
    types = [e.type for e in layer.case_service.get_case(case.id).timeline]
    assert types == ["opened", "finding_linked", "comment", "finding_linked"]
    assert count(engine, audit_log, audit_log.c.object_id == str(case.id)) == 4
