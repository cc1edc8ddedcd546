"""The e-mail sink against a real SMTP server (aiosmtpd): both languages, TLS and AUTH,
refusals, and an outage that delays mail without losing or duplicating it."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from secmon.alerts import wiring
from secmon.alerts.dispatcher import Dispatcher
from secmon.alerts.settings import EmailSettings
from secmon.alerts.sinks.base import Delivered, Failed, Retry
from secmon.alerts.sinks.smtp import SmtpSink, mailbox_for, message_id
from secmon.config import Secret
from secmon.contract import Subject
from secmon.metrics import Metrics
from secmon.net import free_port
from secmon.store.outbox import Outbox, OutboxItem
from secmon.store.schema import outbox
from tests.alerts.conftest import NOW, Clock, SmtpServer, committer, config, finding, layer_for, start_smtp
from tests.alerts.test_profiles import snapshot
from tests.helpers.events import T0


def email_config(port: int, **email: Any):  # type: ignore[no-untyped-def]
    return config(
        notifications={"channels": ["email"], "email": {"host": "127.0.0.1", "port": port, "starttls": False, **email}}
    )


def dispatcher(engine: Engine, cfg: Any, clock: Clock, metrics: Metrics | None = None) -> Dispatcher:
    sinks = wiring.build_sinks(cfg, None, None, metrics or Metrics())  # type: ignore[arg-type]
    return Dispatcher(Outbox(engine, "test"), sinks, metrics or Metrics(), clock=clock, base_backoff_ms=1000)


def test_users_get_their_message_in_zh_cn_and_en(engine: Engine, smtp_server: SmtpServer) -> None:
    cfg = email_config(smtp_server.port)
    clock = Clock()
    layer = layer_for(engine, cfg, clock)
    layer.directory.observe([snapshot("li.wei", "zh-CN", T0), snapshot("alice", "en-GB", T0)])
    travel = {"to": {"country": "JP", "city": "Tokyo"}, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}
    committer(engine, layer).commit(
        [finding("impossible_travel", "li.wei", severity="low", explanation=travel, subject=Subject(ip="192.0.2.44")),
         finding("impossible_travel", "alice", severity="low", explanation=travel, subject=Subject(ip="192.0.2.44"))],
        [], None, NOW,
    )  # fmt: skip
    assert dispatcher(engine, cfg, clock).run_once() == 2
    zh, en = smtp_server.wait_for(2)
    assert zh["Subject"] == "您的账户在新地点登录" and en["Subject"] == "New sign-in from JP"
    assert zh["To"] == "li.wei@accounts.wallet.example" and zh["Content-Language"] == "zh-CN"
    body_zh = zh.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "东京" not in body_zh and "Tokyo" in body_zh and "Firefox on Linux" in body_zh and "192.0.2.x" in body_zh
    assert "192.0.2.44" not in zh.as_string() and "192.0.2.44" not in en.as_string()
    html = en.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "This wasn&#39;t me" in html and "https://help.wallet.example/en/forgotten-password" in html
    with engine.connect() as conn:
        keys = conn.execute(select(outbox.c.dedup_key).where(outbox.c.channel == "notify.email")
                            .order_by(outbox.c.id)).scalars().all()  # fmt: skip
    assert [zh["Message-ID"], en["Message-ID"]] == [message_id(k, "secmon.wallet.example") for k in keys]
    assert zh["X-Secmon-Contact-Before"] == "2026-11-01T00:00:00.000Z"


def test_starttls_and_auth(tmp_path: Path) -> None:
    """Credentials only ever travel inside TLS; the server certificate is verified."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"secmon", b"pw"))

    server = start_smtp(tls_context=ctx, require_starttls=True, auth_required=True, authenticator=authenticator)
    try:
        good = EmailSettings(host="127.0.0.1", port=server.port, starttls=True, cafile=str(cert),
                             username="secmon", password=Secret("pw"))  # fmt: skip
        assert SmtpSink("notify.email", good).deliver([notification(1)]) == [Delivered()]
        assert server.sessions == [{"tls": True, "authenticated": True, "rcpt": ["u1@accounts.wallet.example"]}]
        bad = EmailSettings(host="127.0.0.1", port=server.port, starttls=True, cafile=str(cert), timeout_s=2,
                            username="secmon", password=Secret("wrong"))  # fmt: skip
        (out,) = SmtpSink("notify.email", bad).deliver([notification(2)])
        assert isinstance(out, Retry) and out.peer_down and "wrong" not in out.error
        untrusted = EmailSettings(host="127.0.0.1", port=server.port, starttls=True)
        (out,) = SmtpSink("notify.email", untrusted).deliver([notification(3)])
        assert isinstance(out, Retry) and "CERTIFICATE" in out.error.upper()
    finally:
        server.stop()


def notification(i: int, account: str | None = None) -> OutboxItem:
    body = {
        "notification_id": f"n{i}",
        "account_id": account or f"u{i}",
        "locale": "en",
        "template": "weak_password",
        "subject": f"Subject {i}",
        "text": "Body",
        "html": "<p>Body</p>",
        "created_at": "2026-11-04T10:00:00.000Z",
    }
    return OutboxItem(i, "notify.email", f"k{i}", None, orjson.dumps(body), 0, NOW)


def test_refused_recipient_is_permanent_and_the_rest_still_go() -> None:
    server = start_smtp(refuse="blocked")
    try:
        out = SmtpSink("e", EmailSettings(host="127.0.0.1", port=server.port, starttls=False)).deliver(
            [notification(1, "blocked"), notification(2)]
        )
        assert isinstance(out[0], Failed) and "550" in out[0].error and out[1] == Delivered()
        assert [m["Subject"] for m in server.wait_for(1)] == ["Subject 2"]
    finally:
        server.stop()


def test_mail_safe_account_aliases() -> None:
    assert mailbox_for("alice.b-1") == "alice.b-1"
    for odd in ("账户", "a@b", "x y", ".dot", "a" * 65):
        alias = mailbox_for(odd)
        assert alias.startswith("h-") and alias == mailbox_for(odd) and alias.isascii()


def test_smtp_down_for_a_while_then_every_message_arrives_once(engine: Engine) -> None:
    """Mail waits (without using up its attempts) while the server is down, then arrives
    once; a crash between sending and marking sent re-sends the same Message-ID."""
    port = free_port()
    cfg = email_config(port)
    clock = Clock()
    layer = layer_for(engine, cfg, clock)
    committer(engine, layer).commit([finding(k, f"user{i}", severity="low", key=f"k{i}")
                                     for i, k in enumerate(("weak_password", "mfa_weak_posture", "weak_password"))],
                                    [], None, NOW)  # fmt: skip
    d = dispatcher(engine, cfg, clock)
    for _ in range(4):  # down: each try pauses the channel longer, nothing is dead-lettered
        clock.now += 60_000
        assert d.run_once() == 0
    with engine.connect() as conn:
        assert conn.execute(select(outbox.c.status, outbox.c.attempts).where(outbox.c.channel == "notify.email")
                            ).all() == [("pending", 0)] * 3  # fmt: skip
    server = start_smtp(port)
    try:
        clock.now += 600_000
        assert d.run_once() == 3
        assert d.run_once() == 0
        got = server.wait_for(3)
        assert len(got) == 3 and len({m["Message-ID"] for m in got}) == 3
        # A crash after the send but before mark-sent: the row is re-sent with the same Message-ID.
        ob = Outbox(engine, "crashed")
        with engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.channel == "notify.email").values(status="pending"))
        stuck = ob.claim("notify.email", 1, clock.now)
        fresh = dispatcher(engine, cfg, clock)
        assert fresh.recover(all_inflight=True) == 1
        with engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.channel == "notify.email", outbox.c.id != stuck[0].id)
                         .values(status="sent"))  # fmt: skip
        assert fresh.run_once() == 1
        resent = server.wait_for(4)[-1]
        assert resent["Message-ID"] == got[0]["Message-ID"]
    finally:
        server.stop()
