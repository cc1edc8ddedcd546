"""The action layer in the batch transaction: once per finding revision, and no secret leaves."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from secmon.alerts import wiring
from secmon.alerts.dispatcher import Dispatcher
from secmon.alerts.tables import case_event, support_case, user_notification
from secmon.contract import decode_finding
from secmon.detectors.registry import resolve
from secmon.engine.pipeline import Pipeline
from secmon.metrics import Metrics
from secmon.runtime.replay import replay
from secmon.store.outbox import Outbox
from secmon.store.schema import metadata, outbox
from tests.alerts.conftest import NOW, HttpReceiver, SmtpServer, committer, config, finding, layer_for
from tests.helpers.events import MINUTE, T0, decoded, ev, write_jsonl

#: RFC 6238's example secret ("Hello!\xde\xad\xbe\xef"): short and well known.
SECRET = "JBSWY3DPEHPK3PXP"
URI = f"otpauth://totp/Wallet:alice%40example.com?secret={SECRET}&issuer=Wallet&digits=6&period=30"
SECRET_BYTES = base64.b32decode(SECRET)


def count(engine: Engine, table) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_replayed_batch_causes_nothing_twice(engine: Engine) -> None:
    """The finding gate: the same revisions committed again (a restart's replay) are no-ops."""
    layer = layer_for(engine)
    c = committer(engine, layer)
    batch = [finding("deposit_delayed", key="a:1"), finding("impossible_travel", severity="high"),
             finding("weak_password", "b", severity="low")]  # fmt: skip
    assert len(c.commit(batch, [], None, NOW)) == 3
    before = {t: count(engine, t) for t in (support_case, case_event, user_notification, outbox)}
    assert c.commit(batch, [], None, NOW + MINUTE) == []
    assert {t: count(engine, t) for t in before} == before


def dump_database(engine: Engine) -> str:
    """Every value of every table, as text."""
    out = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    out.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
    return "\n".join(out)


def test_no_secret_leaves(
    tmp_path: Path, sqlite_engine: Engine, smtp_server: SmtpServer, http_receiver: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A real ``mfa.enrolled`` event with a weak otpauth secret, through the detectors, the
    action layer and every sink: the secret is in no case, message, feed record, table or log."""
    caplog.set_level(logging.DEBUG)
    ua = f"Mozilla/5.0 {URI}"  # attacker-controlled fields may carry it too
    events = [
        ev("account.snapshot", "alice", T0, {"locale": "zh-CN", "balance_usd": "50000.00", "mfa_methods": []}),
        ev("account.snapshot", "bob", T0, {"locale": "en", "balance_usd": "50000.00", "mfa_methods": []}),
        ev(
            "mfa.enrolled",
            "alice",
            T0 + MINUTE,
            {"method": "totp", "otpauth_uri": URI},
            user_agent=ua,
            ip="198.51.100.23",
        ),
        ev("mfa.enrolled", "bob", T0 + 2 * MINUTE, {"method": "totp", "otpauth_uri": URI}, user_agent=ua),
        ev("login.succeeded", "bob", T0 + 3 * MINUTE, user_agent=ua),
    ]
    path = write_jsonl(tmp_path / "events.jsonl", events)
    result = replay([path], Pipeline(resolve({})))
    kinds = sorted(f.kind for f in result.findings)
    assert "mfa_weak_secret" in kinds and "mfa_secret_reuse" in kinds

    cfg = config(
        notifications={"channels": ["email", "push"],
                       "email": {"host": "127.0.0.1", "port": smtp_server.port, "starttls": False},
                       "push": {"url": http_receiver.url}},
        feed={"webhooks": [{"name": "siem", "url": http_receiver.url, "format": "ocsf"},
                           {"name": "raw", "url": http_receiver.url, "format": "finding"}]},
    )  # fmt: skip
    layer = layer_for(sqlite_engine, cfg)
    layer.directory.observe([decoded(e) for e in events if e["event_type"] == "account.snapshot"])
    committer(sqlite_engine, layer).commit(result.findings, [], None, NOW)
    sinks = wiring.build_sinks(cfg, None, None, Metrics())  # type: ignore[arg-type]
    sent = Dispatcher(Outbox(sqlite_engine, "t"), sinks, Metrics()).run_once()
    assert sent >= 4
    mails = smtp_server.wait_for(2)
    assert {m["Content-Language"] for m in mails} == {"zh-CN", "en"}
    assert layer.case_service.list_cases(category="account_security")
    layer.case_service.report(0)

    texts = [dump_database(sqlite_engine), caplog.text]
    texts += [m.as_string() for m in mails]
    texts += [part.get_content() for m in mails for part in m.walk() if part.get_content_maintype() == "text"]
    texts += [r.body.decode() + json.dumps(r.headers) for r in http_receiver.received]
    texts += [json.dumps(layer.case_service.get_case(c.id).to_dict()) for c in layer.case_service.list_cases()]
    with sqlite_engine.connect() as conn:
        feed = conn.execute(select(outbox.c.payload).where(outbox.c.channel == "findings")).scalars().all()
    assert feed and all(decode_finding(p).kind for p in feed)
    blob = "\n".join(texts)
    for needle in (
        SECRET,
        SECRET.lower(),
        "otpauth://totp",
        SECRET_BYTES.hex(),
        base64.b64encode(SECRET_BYTES).decode(),
    ):
        assert needle not in blob, f"{needle!r} leaked"
    assert "198.51.100.23" not in "\n".join(m.as_string() for m in mails)
