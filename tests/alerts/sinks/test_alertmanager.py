"""The Alertmanager sink against a real Alertmanager: the alert shows, stays while re-sent,
is resolved with ``endsAt``, and an outage of Alertmanager delays but loses nothing."""

from __future__ import annotations

import time

from sqlalchemy import Engine, select

from secmon.alerts import wiring
from secmon.alerts.dispatcher import Dispatcher
from secmon.alerts.feed import AlertmanagerResender
from secmon.alerts.settings import AlertmanagerSettings
from secmon.metrics import Metrics
from secmon.net import free_port
from secmon.store.outbox import Outbox
from secmon.store.schema import outbox
from tests.alerts.conftest import Alertmanager, HttpReceiver, committer, config, finding, layer_for, wait_until


def wall() -> int:
    return int(time.time() * 1000)


def am_config(url: str, **options: object):  # type: ignore[no-untyped-def]
    return config(console_url="https://console.example", feed={"alertmanager": {"url": url, **options}})


def dispatcher(engine: Engine, cfg, **options) -> Dispatcher:  # type: ignore[no-untyped-def]
    sinks = wiring.build_sinks(cfg, None, None, Metrics())  # type: ignore[arg-type]
    return Dispatcher(Outbox(engine, "test"), sinks, Metrics(), **options)


def notified(receiver: HttpReceiver) -> list[tuple[str, str]]:
    """(status, alertname) of every alert in Alertmanager's webhook notifications."""
    return [(a["status"], a["labels"]["alertname"]) for r in receiver.received for a in r.json()["alerts"]]


def test_alert_fires_and_resolves_on_a_real_alertmanager(sqlite_engine: Engine, alertmanager: Alertmanager) -> None:
    cfg = am_config(alertmanager.url)
    layer = layer_for(sqlite_engine, cfg)
    c = committer(sqlite_engine, layer)
    d = dispatcher(sqlite_engine, cfg)
    now = wall()
    opened = finding("deposit_delayed", "acct-77", severity="high", key="acct-77:dp", t=now - 60_000)
    c.commit([opened], [], None, now)
    assert d.run_once() == 1
    (alert,) = alertmanager.alerts()
    assert alert["labels"] == {"alertname": "deposit_delayed", "severity": "high", "detector": "deposit_delayed",
                               "finding_id": opened.finding_id, "source": "secmon"}  # fmt: skip
    assert "acct-77" not in str(alert["labels"]) and alert["status"]["state"] == "active"
    assert alert["annotations"]["console_url"] == f"https://console.example/findings/{opened.finding_id}"
    assert wait_until(lambda: ("firing", "deposit_delayed") in notified(alertmanager.receiver))
    c.commit([finding("deposit_delayed", "acct-77", severity="high", key="acct-77:dp", t=now - 60_000,
                      status="resolved", revision=1)], [], None, wall())  # fmt: skip
    assert d.run_once() == 1
    assert alertmanager.alerts() == []  # resolved alerts leave the active list …
    assert wait_until(lambda: ("resolved", "deposit_delayed") in notified(alertmanager.receiver))  # … as resolved


def test_resend_extends_the_alert(sqlite_engine: Engine, alertmanager: Alertmanager) -> None:
    cfg = am_config(alertmanager.url, resend_interval_ms=1000, active_ttl_ms=60_000)
    layer = layer_for(sqlite_engine, cfg)
    d = dispatcher(sqlite_engine, cfg)
    committer(sqlite_engine, layer).commit([finding("brute_force", severity="high", t=wall() - 5000)], [], None, wall())
    d.run_once()
    first_end = alertmanager.alerts()[0]["endsAt"]
    time.sleep(1.2)
    resender = AlertmanagerResender(sqlite_engine, AlertmanagerSettings(url=alertmanager.url, resend_interval_ms=1000,
                                                                        active_ttl_ms=60_000))  # fmt: skip
    assert resender.run(wall()) == 1
    assert d.run_once() == 1
    (alert,) = alertmanager.alerts()
    assert alert["endsAt"] > first_end


def test_alertmanager_down_for_a_while_then_every_alert_arrives_once(sqlite_engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    import pytest

    if shutil.which("prometheus-alertmanager") is None:
        pytest.skip("prometheus-alertmanager is not installed (.ci/system-deps installs it)")
    receiver = HttpReceiver(free_port()).start()
    am = Alertmanager(free_port(), tmp_path / "am", receiver)
    am.workdir.mkdir()
    cfg = am_config(am.url)
    layer = layer_for(sqlite_engine, cfg)
    d = dispatcher(sqlite_engine, cfg, base_backoff_ms=200)
    findings = [finding("brute_force", f"a{i}", severity="high", key=f"a{i}", t=wall() - 1000) for i in range(3)]
    committer(sqlite_engine, layer).commit(findings, [], None, wall())
    try:
        for _ in range(3):
            assert d.run_once() == 0
            time.sleep(0.3)
        with sqlite_engine.connect() as conn:
            assert conn.execute(select(outbox.c.status, outbox.c.attempts)
                                .where(outbox.c.channel == "alertmanager")).all() == [("pending", 0)] * 3  # fmt: skip
        am.start()
        assert wait_until(lambda: d.run_once() == 3 or len(am.alerts()) == 3, timeout_s=20, interval_s=0.3)
        assert d.run_once() == 0
        assert sorted(a["labels"]["finding_id"] for a in am.alerts()) == sorted(f.finding_id for f in findings)
        assert wait_until(lambda: len(notified(receiver)) >= 3)
        time.sleep(1.5)
        assert sorted(notified(receiver)) == [("firing", "brute_force")] * 3  # each alert notified once
    finally:
        am.stop()
        receiver.stop()
