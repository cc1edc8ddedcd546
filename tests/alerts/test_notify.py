"""User messages: language, channels, budgets and digests, case lifecycle, masking."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, event, select

from secmon.alerts.tables import not_me_token, support_case, user_notification
from secmon.contract import Subject
from secmon.metrics import Metrics
from secmon.store.schema import outbox
from tests.alerts.conftest import NOW, committer, config, finding, layer_for
from tests.alerts.test_cases import outage, wd_failures
from tests.alerts.test_profiles import snapshot
from tests.helpers.events import HOUR, MINUTE, SECOND, T0

TRAVEL = {"to": {"country": "CN", "city": "Shanghai"}, "from": {"country": "US"}, "ip": "203.0.113.x",
          "distance_km": 11000.0}  # fmt: skip


def messages(engine: Engine, channel: str = "notify.kafka") -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.payload).where(outbox.c.channel == channel).order_by(outbox.c.id))
        return [orjson.loads(r.payload) for r in rows]


def statuses(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(user_notification.c.template, user_notification.c.status)
                            .order_by(user_notification.c.id))  # fmt: skip
        return [(r.template, r.status) for r in rows]


def test_message_in_the_users_language_with_masked_ip_and_not_me_link(engine: Engine) -> None:
    """zh-CN from the latest snapshot; en by default; never the full IP; a signed link."""
    layer = layer_for(engine)
    layer.directory.observe([snapshot("zh-user", "zh-CN", T0)])
    travel = Subject(ip="203.0.113.77")
    committer(engine, layer).commit(
        [finding("impossible_travel", "zh-user", severity="low", explanation=TRAVEL, subject=travel),
         finding("impossible_travel", "en-user", severity="low", explanation=TRAVEL, subject=travel)],
        [], None, NOW,
    )  # fmt: skip
    zh, en = messages(engine)
    assert zh["locale"] == "zh-CN" and zh["subject"] == "您的账户在新地点登录" and "Shanghai" in zh["text"]
    assert en["locale"] == "en" and en["subject"] == "New sign-in from CN"
    for m in (zh, en):
        blob = orjson.dumps(m).decode()
        assert "203.0.113.77" not in blob and "203.0.113.x" in m["text"]
        assert m["not_me_url"].startswith("https://wallet.example/security/not-me?t=")
        assert m["not_me_url"] in m["text"]
        assert m["contact_verified_before"] == "2026-11-01T00:00:00.000Z"  # the first evidence
        assert m["help_url"].endswith("/forgotten-password")
    with engine.connect() as conn:
        assert conn.execute(select(not_me_token.c.account_id).order_by(not_me_token.c.account_id)).scalars().all() \
            == ["en-user", "zh-user"]  # fmt: skip


def test_each_message_goes_to_every_configured_channel_with_one_dedup_key(engine: Engine) -> None:
    cfg = config(notifications={"channels": ["email", "push", "kafka"], "email": {"host": "127.0.0.1"},
                                "push": {"url": "http://127.0.0.1:9/push"}})  # fmt: skip
    layer = layer_for(engine, cfg)
    committer(engine, layer).commit([finding("weak_password", severity="low")], [], None, NOW)
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.channel, outbox.c.dedup_key, outbox.c.payload)
                            .where(outbox.c.channel.like("notify.%"))).all()  # fmt: skip
    assert sorted(r.channel for r in rows) == ["notify.email", "notify.kafka", "notify.push"]
    assert len({r.dedup_key for r in rows}) == 1
    by_channel = {r.channel: orjson.loads(r.payload) for r in rows}
    assert "<html" in by_channel["notify.email"]["html"] and "html" not in by_channel["notify.push"]
    assert by_channel["notify.push"]["not_me_url"] is None  # weak_password: no "wasn't me" link


def test_case_opened_and_resolved_messages_for_a_delayed_deposit(engine: Engine) -> None:
    """ "We noticed your deposit is delayed and are on it", then "it has arrived"."""
    layer = layer_for(engine)
    layer.directory.observe([snapshot("acct-1", "zh-CN", T0)])
    c = committer(engine, layer)
    dep = {"network": "TRON", "asset": "USDT", "amount_usd": 250.0}
    c.commit([finding("deposit_delayed", key="a:dp", explanation=dep, subject=Subject(tx_id="dp-0001", network="TRON"))],
             [], None, NOW)  # fmt: skip
    c.commit([finding("deposit_delayed", key="a:dp", status="resolved", revision=1,
                      explanation={**dep, "delay_ms": 50 * MINUTE}, subject=Subject(tx_id="dp-0001"))],
             [], None, NOW + 20 * MINUTE)  # fmt: skip
    opened, resolved = messages(engine)
    assert opened["template"] == "case_opened.deposit_delayed" and opened["subject"] == "您的充值到账时间比平时长"
    assert "250.00 USD" in opened["text"] and str(opened["case_id"]) in opened["text"]
    assert resolved["template"] == "case_resolved.deposit_delayed" and resolved["subject"] == "您的充值已到账"
    assert "50 分钟" in resolved["text"] and resolved["case_id"] == opened["case_id"]


def test_a_deposit_late_and_credited_within_one_batch_is_recorded_but_not_announced(engine: Engine) -> None:
    layer = layer_for(engine)
    committer(engine, layer).commit([finding("deposit_delayed", key="a:dp"),
                                     finding("deposit_delayed", key="a:dp", status="resolved", revision=1)],
                                    [], None, NOW)  # fmt: skip
    (case,) = layer.case_service.list_cases()
    assert case.status == "resolved" and messages(engine) == []


def test_security_cases_are_not_announced_but_their_notice_names_the_case(engine: Engine) -> None:
    layer = layer_for(engine)
    committer(engine, layer).commit([finding("account_takeover", severity="critical",
                                             explanation={"amount_usd": 9000.0})], [], None, NOW)  # fmt: skip
    (msg,) = messages(engine)
    with engine.connect() as conn:
        case_id = conn.execute(select(support_case.c.id)).scalar_one()
    assert msg["template"] == "account_takeover" and msg["case_id"] == case_id and "9,000.00 USD" in msg["text"]


def test_incident_members_hear_it_is_on_our_side_and_when_it_is_fixed(engine: Engine) -> None:
    layer = layer_for(engine)
    c = committer(engine, layer)
    c.commit([outage()], [], None, NOW)
    c.commit([wd_failures("u1"), wd_failures("u2")], [], None, NOW + MINUTE)
    c.commit([outage(status="resolved", revision=1)], [], None, NOW + HOUR)
    got = [(m["account_id"], m["template"]) for m in messages(engine)]
    assert got == [
        ("u1", "case_opened.withdrawal_outage"),
        ("u2", "case_opened.withdrawal_outage"),
        ("u1", "case_resolved.withdrawal_outage"),
        ("u2", "case_resolved.withdrawal_outage"),
    ]
    assert "SEPA" in messages(engine)[0]["subject"]


def test_per_kind_window_daily_limit_and_critical_bypass(engine: Engine) -> None:
    """One message per template per 15 min; five a day; critical skips the daily limit."""
    layer = layer_for(engine)
    c = committer(engine, layer)
    c.commit([finding("brute_force", key="bf1")], [], None, NOW)
    c.commit([finding("brute_force", key="bf2")], [], None, NOW + 5 * MINUTE)  # same template, too soon
    c.commit([finding("brute_force", key="bf3")], [], None, NOW + 16 * MINUTE)
    for i, kind in enumerate(("weak_password", "mfa_weak_secret", "mfa_weak_posture", "impossible_travel")):
        c.commit([finding(kind, key=f"k{i}", severity="low" if kind != "mfa_weak_secret" else "medium")],
                 [], None, NOW + (20 + i) * MINUTE)  # fmt: skip
    c.commit([finding("account_takeover", severity="critical", key="ato")], [], None, NOW + 30 * MINUTE)
    assert statuses(engine) == [
        ("brute_force", "sent"),
        ("brute_force", "held"),
        ("brute_force", "sent"),
        ("weak_password", "sent"),
        ("mfa_weak_secret", "sent"),
        ("mfa_weak_posture", "sent"),
        ("impossible_travel", "held"),
        ("account_takeover", "sent"),
    ]
    assert len(messages(engine)) == 6


def test_held_messages_become_one_digest_per_interval(engine: Engine) -> None:
    metrics = Metrics()
    layer = layer_for(engine, metrics=metrics)
    layer.directory.observe([snapshot("acct-1", "zh-CN", T0)])
    c = committer(engine, layer)
    for i in range(4):
        c.commit([finding("brute_force", key=f"bf{i}")], [], None, NOW + i * MINUTE)
    notifier = layer.notifier
    assert notifier.flush_digests(engine, NOW + 5 * MINUTE) == 0  # held ones wait a window first
    assert notifier.flush_digests(engine, NOW + 20 * MINUTE) == 1
    digest = messages(engine)[-1]
    assert digest["template"] == "digest" and digest["locale"] == "zh-CN" and "登录失败：3" in digest["text"]
    c.commit([finding("brute_force", key="late1")], [], None, NOW + 21 * MINUTE)
    c.commit([finding("brute_force", key="late2")], [], None, NOW + 22 * MINUTE)
    assert notifier.flush_digests(engine, NOW + 60 * MINUTE) == 0  # at most one digest per interval
    assert notifier.flush_digests(engine, NOW + 7 * HOUR) == 1
    assert [s for _, s in statuses(engine)].count("digested") == 4
    assert metrics.registry.get_sample_value("secmon_notifications_total", {"channel": "all", "outcome": "held"}) == 4


def test_a_thousand_findings_in_a_minute_make_one_case_per_problem_and_few_messages(engine: Engine) -> None:
    """An attack storm on one account: one case per problem, at most the daily budget of
    messages, then one digest."""
    layer = layer_for(engine)
    c = committer(engine, layer)
    kinds = [("brute_force", "high"), ("account_lockout", "medium"), ("mfa_bruteforce", "high"),
             ("impossible_travel", "low")]  # fmt: skip
    for batch in range(10):
        findings = [
            finding(
                kind, "victim", severity=sev, key=f"victim:{batch}:{i}", t=T0 + (batch * 100 + i) * 60 * SECOND // 1000
            )
            for i in range(100)
            for kind, sev in [kinds[i % len(kinds)]]
        ]
        c.commit(findings, [], None, NOW + batch * 6 * SECOND)
    cases = layer.case_service.list_cases(account_id="victim", sort="opened")
    assert [(x.category, x.findings) for x in cases] == [("login_lockout", 500), ("account_security", 250)]
    sent = messages(engine)
    assert 1 <= len(sent) <= 5
    layer.notifier.flush_digests(engine, NOW + 20 * MINUTE)
    assert len(messages(engine)) == len(sent) + 1


def test_account_less_findings_and_disabled_notifications_send_nothing(engine: Engine) -> None:
    layer = layer_for(engine)
    committer(engine, layer).commit([finding("credential_stuffing", None, severity="high",
                                             subject=Subject(ip="198.51.100.1"))], [], None, NOW)  # fmt: skip
    assert messages(engine) == []
    quiet = layer_for(engine, config(notifications={"enabled": False}))
    committer(engine, quiet).commit([finding("weak_password", "x", severity="low")], [], None, NOW)
    assert messages(engine) == []


def test_a_later_revision_of_a_noticed_finding_sends_nothing_after_one_lookup(engine: Engine) -> None:
    """One notice per finding; a revision (escalated, more evidence) finds it decided by its
    key alone, without the case, locale and budget queries a first notice needs."""
    c = committer(engine, layer_for(engine))
    c.commit([finding("impossible_travel", "u1", severity="low", explanation=TRAVEL)], [], None, NOW)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        c.commit([finding("impossible_travel", "u1", severity="high", revision=1, explanation=TRAVEL)],
                 [], None, NOW + MINUTE)  # fmt: skip
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(messages(engine)) == 1
    assert len([s for s in statements if "user_notification" in s]) == 1
