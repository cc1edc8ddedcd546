"""The security feed: OCSF and contract records for webhooks, Alertmanager alerts and re-sends."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, select

from secmon.alerts.feed import AlertmanagerResender, alertmanager_alert, ocsf_detection_finding, webhook_body
from secmon.alerts.settings import AlertmanagerSettings
from secmon.contract import Subject, parse_ts_ms
from secmon.store.schema import outbox
from tests.alerts.conftest import NOW, committer, config, finding, layer_for
from tests.helpers.events import HOUR, MINUTE, T0

URI = "otpauth://totp/W:a?secret=JBSWY3DPEHPK3PXP"
FEED = {
    "alertmanager": {"url": "http://127.0.0.1:9", "min_severity": "medium", "resend_interval_ms": 60_000},
    "webhooks": [{"name": "siem", "url": "http://127.0.0.1:9/s", "format": "ocsf", "secret": "s3cret"},
                 {"name": "chat", "url": "http://127.0.0.1:9/c", "min_severity": "high"}],
}  # fmt: skip


def rows(engine: Engine, channel: str) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as conn:
        found = conn.execute(select(outbox.c.dedup_key, outbox.c.payload).where(outbox.c.channel == channel)
                             .order_by(outbox.c.id))  # fmt: skip
        return [(r.dedup_key, orjson.loads(r.payload)) for r in found]


def test_ocsf_detection_finding_shape() -> None:
    f = finding("credential_stuffing", None, severity="high", subject=Subject(ip="198.51.100.7", asn=64500),
                explanation={"accounts": 40, "note": URI})  # fmt: skip
    doc = ocsf_detection_finding(f, "https://console.example")
    assert (doc["class_uid"], doc["category_uid"], doc["activity_id"], doc["type_uid"]) == (2004, 2, 1, 200401)
    assert (doc["severity_id"], doc["severity"], doc["status"]) == (4, "High", "New")
    assert doc["finding_info"]["uid"] == f.finding_id and doc["finding_info"]["types"] == ["credential_stuffing"]
    assert doc["finding_info"]["src_url"] == f"https://console.example/findings/{f.finding_id}"
    assert doc["time"] == parse_ts_ms(f.detected_at) and doc["metadata"]["version"] == "1.1.0"
    assert {"name": "subject.ip", "type_id": 2, "type": "IP Address", "value": "198.51.100.7"} in doc["observables"]
    assert "JBSWY3DPEHPK3PXP" not in orjson.dumps(doc).decode()
    closed = ocsf_detection_finding(finding("deposit_delayed", status="resolved", revision=1), "c")
    assert (closed["activity_id"], closed["status_id"]) == (3, 4) and closed["resources"][0]["uid"] == "acct-1"


def test_alert_labels_are_bounded_and_carry_no_account() -> None:
    f = finding("brute_force", "acct-secret-id", severity="high", t=T0)
    alert = alertmanager_alert(f, "https://console.example/", NOW)
    assert set(alert["labels"]) == {"alertname", "severity", "detector", "finding_id", "source"}
    assert alert["labels"]["alertname"] == "brute_force" and "acct-secret-id" not in str(alert["labels"])
    assert alert["generatorURL"] == f"https://console.example/findings/{f.finding_id}"
    assert alert["annotations"]["summary"].startswith("Brute-force login attempts: ")
    future = alertmanager_alert(finding("brute_force", t=NOW + HOUR), "c", NOW)
    assert parse_ts_ms(future["startsAt"]) == NOW  # never a start in Alertmanager's future


def test_webhook_body_formats() -> None:
    f = finding("weak_password", severity="low", explanation={"uri": URI})
    plain = orjson.loads(webhook_body(f, "finding", "c"))
    assert plain["type"] == "secmon.finding" and plain["finding"]["finding_id"] == f.finding_id
    assert "JBSWY3DPEHPK3PXP" not in str(plain)
    assert orjson.loads(webhook_body(f, "ocsf", "c"))["class_uid"] == 2004


def test_router_sends_to_the_sinks_each_severity_selects(engine: Engine) -> None:
    layer = layer_for(engine, config(feed=FEED))
    c = committer(engine, layer)
    c.commit([finding("weak_password", severity="low", key="w"), finding("brute_force", severity="high", key="b")],
             [], None, NOW)  # fmt: skip
    siem = rows(engine, "webhook.siem")
    assert [p["class_uid"] for _, p in siem] == [2004, 2004]
    assert [p["finding"]["kind"] for _, p in rows(engine, "webhook.chat")] == ["brute_force"]
    (am,) = rows(engine, "alertmanager")
    assert am[1]["alert"]["labels"]["alertname"] == "brute_force" and am[1]["endsAt"] is None


def test_alertmanager_alert_is_ended_on_resolution_and_when_its_labels_change(engine: Engine) -> None:
    layer = layer_for(engine, config(feed=FEED))
    c = committer(engine, layer)
    c.commit([finding("deposit_delayed", severity="medium", key="d")], [], None, NOW)
    c.commit([finding("deposit_delayed", severity="high", key="d", revision=1)], [], None, NOW + MINUTE)
    c.commit([finding("deposit_delayed", severity="high", key="d", revision=2, status="resolved")], [], None,
             NOW + 2 * MINUTE)  # fmt: skip
    got = [
        (key.split(":", 2)[2], p["alert"]["labels"]["severity"], p["endsAt"]) for key, p in rows(engine, "alertmanager")
    ]
    assert got == [
        ("0", "medium", None),
        ("1:end", "medium", "2026-11-04T10:01:00.000Z"),  # the medium alert ends …
        ("1", "high", None),  # … and the high one starts
        ("2:end", "high", "2026-11-04T10:02:00.000Z"),
    ]


def test_resender_keeps_active_alerts_alive_and_expires_quiet_ones(engine: Engine) -> None:
    layer = layer_for(engine, config(feed=FEED))
    c = committer(engine, layer)
    c.commit([finding("brute_force", severity="high", key="b")], [], None, NOW)
    resender = AlertmanagerResender(engine, AlertmanagerSettings(url="x", resend_interval_ms=60_000,
                                                                 active_ttl_ms=HOUR))  # fmt: skip
    assert resender.run(NOW + 30_000) == 0  # not due yet
    assert resender.run(NOW + 61_000) == 1
    assert resender.run(NOW + 62_000) == 0  # claimed once per interval
    assert resender.run(NOW + 125_000) == 1
    assert resender.run(NOW + HOUR + 200_000) == 1  # quiet for the TTL: resolved
    assert resender.run(NOW + 2 * HOUR) == 0
    keys = [key for key, _ in rows(engine, "alertmanager")]
    assert keys[1:] == [f"am:{layer_id(engine)}:0:r{(NOW + 61_000) // 60_000}",
                        f"am:{layer_id(engine)}:0:r{(NOW + 125_000) // 60_000}",
                        f"am:{layer_id(engine)}:0:expired"]  # fmt: skip
    assert rows(engine, "alertmanager")[-1][1]["endsAt"] is not None


def layer_id(engine: Engine) -> str:
    return str(rows(engine, "alertmanager")[0][1]["alert"]["labels"]["finding_id"])
