"""The action layer wired into the service: channels match sinks, the console API, and a
real ``secmon run`` worker killed between the case write and the send."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select

from secmon.alerts import wiring
from secmon.alerts.tables import account_profile, support_case
from secmon.metrics import Metrics
from secmon.net import free_port
from secmon.store.schema import outbox
from tests.alerts.conftest import NOT_ME_KEY, NOW, committer, config, finding, layer_for, start_smtp, wait_until
from tests.helpers.events import MINUTE, T0, ev
from tests.integration.harness import Deployment

FULL = {
    "notifications": {"channels": ["email", "push", "kafka"], "email": {"host": "127.0.0.1"},
                      "push": {"url": "http://127.0.0.1:9/push", "token": "t"}},
    "feed": {"alertmanager": {"url": "http://127.0.0.1:9"},
             "webhooks": [{"name": "siem", "url": "http://127.0.0.1:9/s", "format": "ocsf"}]},
}  # fmt: skip


def test_every_channel_the_effects_write_has_a_sink(sqlite_engine: Engine) -> None:
    cfg = config(**FULL)
    layer = wiring.build_action_layer(cfg, sqlite_engine, Metrics())
    sinks = wiring.build_sinks(cfg, None, lambda: None, Metrics())  # type: ignore[arg-type]
    assert set(sinks) == set(layer.notifier.channels) | set(layer.feed.channels())
    assert set(sinks) == {"notify.email", "notify.push", "notify.kafka", "alertmanager", "webhook.siem"}
    assert sinks["alertmanager"].ordered and not sinks["notify.email"].ordered
    assert wiring.describe(cfg)["webhooks"] == ["siem"]
    assert wiring.build_sinks(config(notifications={"enabled": False}), None, lambda: None, Metrics()) == {}  # type: ignore[arg-type]


def test_console_api_is_built_from_config(sqlite_engine: Engine) -> None:
    """What the console engineer gets: the case service and the not-me redeemer."""
    layer = layer_for(sqlite_engine)
    committer(sqlite_engine, layer).commit([finding("impossible_travel", "u", severity="high")], [], None, NOW)
    console = wiring.build_console(config(), sqlite_engine)
    (case,) = console.cases.list_cases()
    assert console.cases.get_case(case.id).case.account_id == "u"
    assert console.redeem_not_me_link("garbage").status == "invalid"


def count(url: str, stmt) -> int:  # type: ignore[no-untyped-def]
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    finally:
        eng.dispose()


@pytest.mark.integration
@pytest.mark.slow
def test_worker_killed_between_case_write_and_send_delivers_once_after_restart(broker: str, tmp_path: Path) -> None:
    """The batch (finding, case, messages) commits while the mail server is down; the worker
    is SIGKILLed; after the restart the e-mail goes out exactly once, in the user's language
    (from the snapshot the worker saw), and the notifications topic has it once."""
    store = f"sqlite:///{tmp_path / 'secmon.db'}"
    smtp_port = free_port()
    dep = Deployment(broker, tmp_path, store, partitions=2)
    dep.extra = {
        "alerts": {"notifications": {"channels": ["email", "kafka"], "not_me": {"signing_key": NOT_ME_KEY},
                                     "email": {"host": "127.0.0.1", "port": smtp_port, "starttls": False,
                                               "timeout_s": 2}}},
        "delivery": {"base_backoff_ms": 200, "max_backoff_ms": 2000},
    }  # fmt: skip
    dep.create_topics()
    try:
        w1 = dep.start_worker("w1")
        w1.wait_ready()
        dep.produce([
            ev("account.snapshot", "w-zh", T0, {"locale": "zh-CN"}),
            ev("deposit.initiated", "w-zh", T0 + MINUTE, {"tx_id": "dp-77", "amount_usd": "300.00"}),
            ev("login.succeeded", "w-clock", T0 + 45 * MINUTE),
            ev("login.succeeded", "w-zh", T0 + 46 * MINUTE),
        ])  # fmt: skip
        email_rows = select(func.count()).select_from(outbox).where(outbox.c.channel == "notify.email")
        assert wait_until(lambda: count(store, email_rows) == 1, timeout_s=60), w1.log.read_text()[-3000:]
        assert count(store, select(func.count()).select_from(account_profile)) == 1  # via Worker.on_snapshots
        w1.kill()  # the case and its messages are committed; the e-mail is not sent
        assert count(store, select(func.count()).select_from(outbox)
                     .where(outbox.c.channel == "notify.email", outbox.c.status == "sent")) == 0  # fmt: skip
        server = start_smtp(smtp_port)
        try:
            w2 = dep.start_worker("w2")
            w2.wait_ready()
            got = server.wait_for(1, timeout_s=60)
            time.sleep(3)  # anything more would arrive now
            assert len(server.messages) == 1, w2.log.read_text()[-3000:]
            assert got[0]["Subject"] == "您的充值到账时间比平时长" and got[0]["Content-Language"] == "zh-CN"
        finally:
            server.stop()
        assert count(store, select(func.count()).select_from(support_case)) == 1
        topic = [r for r in dep.read("secmon.notifications", settle_s=1) if r.key == b"w-zh"]
        assert len(topic) == 1
        assert wait_until(lambda: w2.metric("secmon_notifications_total", channel="notify.email", outcome="sent") == 1)
    finally:
        dep.stop_all()
