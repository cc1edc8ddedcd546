"""Build contract events for tests (plain dicts, serialised as the platform would)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from secmon.contract import EventDecoder, Finding, iso_ms

#: 2026-11-01T00:00:00Z in epoch ms: a fixed origin for test timelines.
T0 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
SECOND, MINUTE, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000

_ids = itertools.count()

_PAYLOAD_DEFAULTS: dict[str, dict[str, Any]] = {
    "login.succeeded": {"method": "password", "mfa": "totp"},
    "login.failed": {"reason": "bad_password"},
    "account.locked": {"reason": "too_many_failures", "failed_attempts": 10, "locked_until": None},
    "account.unlocked": {"by": "timeout"},
    "password.reset_requested": {"channel": "email"},
    "password.changed": {"via": "settings", "strength": 3, "breached": False},
    "mfa.enrolled": {"method": "totp"},
    "mfa.disabled": {"method": "totp", "via": "settings"},
    "mfa.challenge_failed": {"method": "totp"},
    "mfa.challenge_succeeded": {"method": "totp"},
    "recovery_code.used": {"remaining": 5},
    "contact.changed": {"field": "email"},
    "deposit.initiated": {"tx_id": "dp-1", "asset": "USDT", "amount": "100.00", "amount_usd": "100.00", "network": "TRON"},
    "deposit.credited": {"tx_id": "dp-1", "asset": "USDT", "amount": "100.00", "amount_usd": "100.00"},
    "withdrawal.requested": {
        "tx_id": "wd-1", "asset": "USDT", "amount": "100.00", "amount_usd": "100.00",
        "to_address": "T-known-1", "network": "TRON", "fee": "1.00",
    },
    "withdrawal.completed": {"tx_id": "wd-1"},
    "withdrawal.failed": {"tx_id": "wd-1", "reason": "bank_rejected"},
    "transfer.sent": {"tx_id": "tr-1", "asset": "USDT", "amount": "10.00", "amount_usd": "10.00", "to_account": "w-other"},
    "address.added": {"address": "T-new-1", "asset": "USDT"},
    "account.snapshot": {
        "balance_usd": "100.00", "mfa_methods": ["totp"], "email_verified": True, "phone_verified": True,
        "created_at": "2025-01-01T00:00:00.000Z", "locale": "en",
    },
}  # fmt: skip


def ev(event_type: str, account_id: str, ts: int, payload: dict[str, Any] | None = None, **envelope: Any) -> dict[str, Any]:
    """One contract event as a dict; payload fields default to valid values."""
    body = dict(_PAYLOAD_DEFAULTS[event_type])
    body.update(payload or {})
    event: dict[str, Any] = {
        "event_id": envelope.pop("event_id", f"e{next(_ids):08d}"),
        "event_type": event_type,
        "schema_version": "1",
        "occurred_at": iso_ms(ts),
        "account_id": account_id,
        "payload": body,
    }
    event.update({k: v for k, v in envelope.items() if v is not None})
    return event


def geo(country: str, lat: float | None = None, lon: float | None = None, city: str | None = None) -> dict[str, Any]:
    g: dict[str, Any] = {"country": country}
    if city:
        g["city"] = city
    if lat is not None and lon is not None:
        g["lat"], g["lon"] = lat, lon
    return g


def write_jsonl(path: Path, events: Iterable[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for e in events:
            fh.write(json.dumps(e, separators=(",", ":")) + "\n")
    return path


_decoder = EventDecoder()


def decoded(event: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The contract struct for a dict event (what detectors receive)."""
    return _decoder.decode(json.dumps(event).encode())


def topic_of(event: dict[str, Any]) -> str:
    from secmon.contract import EVENT_TYPES

    return EVENT_TYPES[event["event_type"]].topic


def replay_findings(
    tmp_path: Path, events: Iterable[dict[str, Any]], specs: Iterable[Any], *, batch_size: int = 4096
) -> list[Finding]:
    """Every finding record (all revisions, in emission order) of ``secmon replay`` over
    ``events`` (written time-ordered to a JSONL file) with the given ``DetectorSpec`` s."""
    from secmon.engine.pipeline import Pipeline
    from secmon.runtime.replay import replay

    path = write_jsonl(tmp_path / f"events-{next(_ids)}.jsonl", sorted(events, key=lambda e: e["occurred_at"]))
    records: list[Finding] = []
    replay([path], Pipeline(list(specs)), progress=False, batch_size=batch_size, on_finding=records.append)
    return records
