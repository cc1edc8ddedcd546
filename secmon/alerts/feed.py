"""The security feed beyond the ``secmon.findings`` topic: Alertmanager and signed webhooks.

:class:`FeedRouter` runs in the batch transaction: for each new finding revision its policy
sends to the feed, it writes outbox rows for every configured feed sink whose
``min_severity`` it reaches — a contract finding record or an OCSF Detection Finding for a
webhook, an alert for Alertmanager.  Alertmanager forgets alerts that are not re-sent, so
the router keeps each finding's alert in ``alert_state`` and :class:`AlertmanagerResender`
(a periodic job) re-sends the active ones and resolves those whose finding resolved or went
quiet for ``active_ttl_ms``.

Alert labels are bounded and carry no account id: ``alertname`` (the kind), ``severity``,
``detector``, ``finding_id`` (an opaque hash that keeps one alert per finding) and
``source="secmon"``.  Account ids appear only in the SIEM records (webhooks), which the
security team needs to act on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from sqlalchemy import Connection, Engine, select, update

from secmon.alerts.policy import Rule, kind_title
from secmon.alerts.redact import scrub, scrub_obj
from secmon.alerts.settings import AlertmanagerSettings, FeedSettings, WebhookSettings
from secmon.alerts.tables import alert_state
from secmon.clock import wall_ms
from secmon.contract import SEVERITIES, Finding, iso_ms, parse_ts_ms
from secmon.store.db import upsert
from secmon.store.outbox import OutboxMessage, enqueue

ALERTMANAGER_CHANNEL = "alertmanager"
WEBHOOK_PREFIX = "webhook."
OCSF_VERSION = "1.1.0"
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_OCSF_SEVERITY = {"info": (1, "Informational"), "low": (2, "Low"), "medium": (3, "Medium"), "high": (4, "High"),
                  "critical": (5, "Critical")}  # fmt: skip


def finding_record(f: Finding) -> dict[str, Any]:
    """The contract's finding record (secrets scrubbed as a second line of defence)."""
    return scrub_obj(msgspec.to_builtins(f))  # type: ignore[no-any-return]


def ocsf_detection_finding(f: Finding, console_url: str, version: str = "0.1.0") -> dict[str, Any]:
    """The finding as an OCSF 1.1 Detection Finding (``class_uid`` 2004), for SIEMs.

    ``activity_id``: 1 create (revision 0), 2 update, 3 close (resolved)."""
    activity = (3, "Close") if f.status == "resolved" else ((1, "Create") if f.revision == 0 else (2, "Update"))
    sev_id, sev = _OCSF_SEVERITY[f.severity]
    s = f.subject
    observables: list[dict[str, Any]] = []
    if s.ip:
        observables.append({"name": "subject.ip", "type_id": 2, "type": "IP Address", "value": s.ip})
    if s.asn is not None:
        observables.append({"name": "subject.asn", "type_id": 99, "type": "Other", "value": str(s.asn)})
    if s.address:
        observables.append({"name": "subject.address", "type_id": 99, "type": "Other", "value": s.address})
    if f.account_id is not None:
        observables.append({"name": "account.uid", "type_id": 10, "type": "Resource UID", "value": f.account_id})
    record: dict[str, Any] = {
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity[0],
        "activity_name": activity[1],
        "type_uid": 200400 + activity[0],
        "severity_id": sev_id,
        "severity": sev,
        "status_id": 4 if f.status == "resolved" else 1,
        "status": "Resolved" if f.status == "resolved" else "New",
        "time": parse_ts_ms(f.detected_at),
        "message": f.summary,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f"{f.finding_id}:{f.revision}",
            "product": {"name": "secmon", "vendor_name": "secmon", "version": version},
        },
        "finding_info": {
            "uid": f.finding_id,
            "title": kind_title(f.kind),
            "desc": f.summary,
            "types": [f.kind],
            "src_url": f"{console_url.rstrip('/')}/findings/{f.finding_id}",
            "first_seen_time": parse_ts_ms(f.first_seen),
            "last_seen_time": parse_ts_ms(f.last_seen),
            "analytic": {"uid": f.detector, "name": f.detector, "type_id": 1, "type": "Rule"},
            "related_events": [{"uid": e} for e in f.evidence],
        },
        "observables": observables,
        "unmapped": {
            "kind": f.kind,
            "revision": f.revision,
            "subject": msgspec.to_builtins(s),
            "explanation": f.explanation,
        },
    }
    if f.account_id is not None:
        record["resources"] = [{"type": "account", "uid": f.account_id}]
    return scrub_obj(record)  # type: ignore[no-any-return]


def alertmanager_alert(f: Finding, console_url: str, now_ms: int) -> dict[str, Any]:
    """An Alertmanager v2 alert for a finding (``endsAt`` is set when it is sent)."""
    link = f"{console_url.rstrip('/')}/findings/{f.finding_id}"
    started = min(parse_ts_ms(f.first_seen), now_ms)  # a start in Alertmanager's future is refused
    return {
        "labels": {
            "alertname": f.kind,
            "severity": f.severity,
            "detector": f.detector,
            "finding_id": f.finding_id,
            "source": "secmon",
        },
        "annotations": {
            "summary": scrub(f"{kind_title(f.kind)}: {f.summary}")[:1000],
            "description": scrub(_describe(f))[:4000],
            "console_url": link,
        },
        "startsAt": iso_ms(started),
        "generatorURL": link,
    }


def _describe(f: Finding) -> str:
    facts = ", ".join(f"{k}={v}" for k, v in f.explanation.items() if isinstance(v, str | int | float) and k != "ip")
    return f"{f.summary} (first seen {f.first_seen}, last seen {f.last_seen}; {facts})"


def am_payload(alert: dict[str, Any], ends_ms: int | None) -> bytes:
    """An Alertmanager outbox row: the alert, and ``endsAt`` only when it is resolved."""
    return orjson.dumps({"alert": alert, "endsAt": iso_ms(ends_ms) if ends_ms is not None else None})


def webhook_body(f: Finding, fmt: str, console_url: str) -> bytes:
    if fmt == "ocsf":
        return orjson.dumps(ocsf_detection_finding(f, console_url))
    return orjson.dumps({"type": "secmon.finding", "finding": finding_record(f)})


class FeedRouter:
    """Writes the feed sinks' outbox rows for new finding revisions (in the batch)."""

    def __init__(self, settings: FeedSettings, console_url: str) -> None:
        self.console_url = console_url
        self.webhooks: list[tuple[str, WebhookSettings]] = [(WEBHOOK_PREFIX + w.name, w) for w in settings.webhooks]
        self.am: AlertmanagerSettings | None = settings.alertmanager if settings.alertmanager.url else None

    def channels(self) -> list[str]:
        return [c for c, _ in self.webhooks] + ([ALERTMANAGER_CHANNEL] if self.am is not None else [])

    def apply(self, conn: Connection, f: Finding, rule: Rule, now_ms: int) -> int:
        """Enqueue the finding for the feed sinks its policy and severity select."""
        rank = _RANK[f.severity]
        messages: list[OutboxMessage] = []
        if rule.feed:
            for channel, w in self.webhooks:
                if rank >= _RANK[w.min_severity]:
                    messages.append(OutboxMessage(channel, f"{f.finding_id}:{f.revision}",
                                                  webhook_body(f, w.format, self.console_url),
                                                  f.finding_id.encode()))  # fmt: skip
        if self.am is not None:
            messages.extend(self._alertmanager(conn, f, rule.feed and rank >= _RANK[self.am.min_severity], now_ms))
        return enqueue(conn, messages, now_ms)

    def _alertmanager(self, conn: Connection, f: Finding, wanted: bool, now_ms: int) -> list[OutboxMessage]:
        prev = conn.execute(select(alert_state).where(alert_state.c.finding_id == f.finding_id)).first()
        out: list[OutboxMessage] = []
        key = f"am:{f.finding_id}:{f.revision}"
        if prev is not None and prev.status == "active":
            old = orjson.loads(prev.alert)
            resolved = f.status == "resolved"
            if resolved or (wanted and old["labels"] != alertmanager_alert(f, self.console_url, now_ms)["labels"]):
                # Resolved, or its labels change (severity): end the alert under the old labels.
                out.append(OutboxMessage(ALERTMANAGER_CHANNEL, f"{key}:end", am_payload(old, now_ms)))
                conn.execute(update(alert_state).where(alert_state.c.finding_id == f.finding_id)
                             .values(status="resolved", updated_ms=now_ms, revision=f.revision))  # fmt: skip
            if resolved:
                return out
        if not wanted or f.status == "resolved":
            return out
        alert = alertmanager_alert(f, self.console_url, now_ms)
        out.append(OutboxMessage(ALERTMANAGER_CHANNEL, key, am_payload(alert, None)))
        upsert(conn, alert_state, [{"finding_id": f.finding_id, "revision": f.revision, "alert": orjson.dumps(alert).decode(),
                                    "status": "active", "updated_ms": now_ms, "last_sent_ms": now_ms}],
               keys=("finding_id",))  # fmt: skip
        return out


class AlertmanagerResender:
    """Periodic job: re-send active alerts (so Alertmanager keeps them) and expire quiet ones.

    Each due alert is claimed by one conditional UPDATE, so several workers re-send it once
    per interval; the outbox dedup key is per interval too."""

    name = "alertmanager_resend"

    def __init__(self, engine: Engine, settings: AlertmanagerSettings, *, clock: Callable[[], int] = wall_ms) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock

    def run(self, now_ms: int | None = None) -> int:
        now = self.clock() if now_ms is None else now_ms
        interval = self.settings.resend_interval_ms
        c = alert_state.c
        with self.engine.begin() as conn:
            due = conn.execute(
                update(alert_state)
                .where(c.status == "active", c.last_sent_ms <= now - interval)
                .values(last_sent_ms=now)
                .returning(c.finding_id, c.revision, c.alert, c.updated_ms)
            ).all()
            messages = []
            expired = []
            for fid, revision, alert, updated_ms in due:
                body = orjson.loads(alert)
                if updated_ms <= now - self.settings.active_ttl_ms:
                    expired.append(fid)
                    messages.append(OutboxMessage(ALERTMANAGER_CHANNEL, f"am:{fid}:{revision}:expired",
                                                  am_payload(body, now)))  # fmt: skip
                else:
                    messages.append(OutboxMessage(ALERTMANAGER_CHANNEL, f"am:{fid}:{revision}:r{now // interval}",
                                                  am_payload(body, None)))  # fmt: skip
            if expired:
                conn.execute(update(alert_state).where(c.finding_id.in_(expired)).values(status="resolved"))
            return enqueue(conn, messages, now)
