"""The "this wasn't me" link: signed, expiring, single use; it escalates and alerts security."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from sqlalchemy import Engine, select

from secmon.alerts.not_me import NOT_ME_KIND, NotMeLinks, TokenError
from secmon.metrics import Metrics
from secmon.store.schema import finding as finding_table
from secmon.store.schema import outbox
from tests.alerts.conftest import NOW, Clock, committer, config, finding, layer_for
from tests.alerts.test_notify import messages
from tests.helpers.events import DAY, HOUR

KEY = b"k" * 32


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def test_tokens_verify_and_reject_tampering_and_expiry() -> None:
    links = NotMeLinks(KEY, "https://w.example/nm", 7 * DAY)
    token = links.sign("tid-1", NOW + 7 * DAY)
    assert links.verify(token, NOW) == "tid-1"
    claims, mac = token.split(".")
    forged = links.sign("tid-2", NOW + 7 * DAY).split(".")[0] + "." + mac
    for bad in (forged, token[:-2] + "AA", "x", claims, "", "a.b.c"):
        with pytest.raises(TokenError) as err:
            links.verify(bad, NOW)
        assert err.value.reason == "invalid"
    with pytest.raises(TokenError) as err:
        links.verify(token, NOW + 7 * DAY + 1000)
    assert err.value.reason == "expired"
    with pytest.raises(TokenError):
        NotMeLinks(b"x" * 32, "u", DAY).verify(token, NOW)  # another key
    with pytest.raises(ValueError):
        NotMeLinks(b"short", "u", DAY)


def test_following_the_link_escalates_the_case_and_alerts_security_once(engine: Engine) -> None:
    clock = Clock()
    metrics = Metrics()
    layer = layer_for(engine, clock=clock, metrics=metrics)
    committer(engine, layer).commit([finding("impossible_travel", "victim", severity="high")], [], None, NOW)
    (notice,) = messages(engine)
    (case,) = layer.case_service.list_cases()
    assert case.priority == "P2" and notice["case_id"] == case.id
    clock.now = NOW + HOUR
    result = layer.not_me.redeem(token_of(notice["not_me_url"]))  # type: ignore[union-attr]
    assert result.status == "accepted" and result.case_id == case.id
    detail = layer.case_service.get_case(case.id)
    assert detail.case.priority == "P1" and detail.case.due_ms == NOW + 2 * HOUR
    assert [(e.type, e.actor) for e in detail.timeline][-2:] == [("priority", "user:victim"), ("not_me", "user:victim")]
    assert detail.findings[-1].kind == NOT_ME_KIND
    with engine.connect() as conn:
        feed = conn.execute(select(outbox.c.dedup_key, outbox.c.payload).where(outbox.c.channel == "findings")).all()
        gate = conn.execute(select(finding_table.c.kind).where(finding_table.c.kind == NOT_ME_KIND)).all()
    reports = [orjson.loads(r.payload) for r in feed if orjson.loads(r.payload)["kind"] == NOT_ME_KIND]
    assert len(reports) == 1 and len(gate) == 1
    report = reports[0]
    assert report["severity"] == "critical" and report["account_id"] == "victim"
    assert report["explanation"]["case_id"] == case.id
    assert report["explanation"]["reported_kind"] == "impossible_travel"
    ack = messages(engine)[-1]
    assert ack["template"] == "not_me_received" and ack["case_id"] == case.id
    again = layer.not_me.redeem(token_of(notice["not_me_url"]))  # type: ignore[union-attr]
    assert again.status == "used" and again.case_id is None
    assert len(messages(engine)) == 2
    assert metrics.registry.get_sample_value("secmon_not_me_reports_total", {"outcome": "accepted"}) == 1
    assert metrics.registry.get_sample_value("secmon_not_me_reports_total", {"outcome": "used"}) == 1
    audit = layer.case_service.audit_trail(object_type="not_me_token")
    assert len(audit) == 1 and audit[0].actor == "user:victim"


def test_a_resolved_case_is_reopened_and_no_case_means_a_new_p1_case(engine: Engine) -> None:
    clock = Clock()
    layer = layer_for(engine, clock=clock)
    c = committer(engine, layer)
    c.commit([finding("impossible_travel", "a", severity="high"), finding("weak_password", "b", severity="low"),
              finding("mfa_bruteforce", "c", severity="medium")], [], None, NOW)  # fmt: skip
    by_account = {m["account_id"]: m for m in messages(engine)}
    (case_a,) = layer.case_service.list_cases(account_id="a")
    layer.case_service.change_status(case_a.id, "resolved", actor="agent")
    reopened = layer.not_me.redeem(token_of(by_account["a"]["not_me_url"]))  # type: ignore[union-attr]
    assert reopened.status == "accepted" and reopened.case_id == case_a.id
    assert layer.case_service.get_case(case_a.id).case.status == "open"
    assert by_account["b"]["not_me_url"] is None  # weak_password carries no link
    fresh = layer.not_me.redeem(token_of(by_account["c"]["not_me_url"]))  # type: ignore[union-attr]
    (case_c,) = layer.case_service.list_cases(account_id="c")
    assert fresh.case_id == case_c.id and (case_c.category, case_c.priority) == ("account_security", "P1")


def test_expired_unknown_and_unconfigured(engine: Engine) -> None:
    clock = Clock()
    layer = layer_for(engine, clock=clock)
    committer(engine, layer).commit([finding("impossible_travel", "a", severity="low")], [], None, NOW)
    token = token_of(messages(engine)[0]["not_me_url"])
    clock.now = NOW + 7 * DAY + 1
    assert layer.not_me.redeem(token).status == "expired"  # type: ignore[union-attr]
    links = layer.links
    assert links is not None
    assert layer.not_me.redeem(links.sign("never-issued", NOW + DAY * 30)).status == "invalid"  # type: ignore[union-attr]
    from secmon.alerts.wiring import build_console

    unsigned = config(notifications={"not_me": {"signing_key": ""}})
    assert build_console(unsigned, engine).redeem_not_me_link(token).status == "invalid"
