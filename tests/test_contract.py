"""The contract module: every example decodes; every kind of bad record gets its reason."""

from __future__ import annotations

import ipaddress
import json

import pytest

from secmon.contract import (
    BAD_RECORD_REASONS,
    EVENT_TYPES,
    BadRecord,
    EventDecoder,
    MfaEnrolled,
    iso_ms,
    parse_ts_ms,
)
from secmon.contract import _valid_ip as valid_ip
from tests.conftest import CONTRACT_EXAMPLES
from tests.helpers.events import T0, ev


def test_every_contract_example_decodes_with_its_type_and_time() -> None:
    """The platform's examples.jsonl: one of each event type, all valid."""
    dec = EventDecoder()
    seen = set()
    for line in CONTRACT_EXAMPLES.read_bytes().splitlines():
        raw = json.loads(line)
        event = dec.decode(line)
        assert event.event_type == raw["event_type"]
        assert event.ts == parse_ts_ms(raw["occurred_at"])
        seen.add(event.event_type)
    assert seen == set(EVENT_TYPES)


def test_optional_fields_are_optional_and_unknown_fields_ignored() -> None:
    """Only the contract's required fields are required; extra fields are forward-compatible."""
    minimal = {"event_id": "x", "event_type": "login.failed", "schema_version": "1",
               "occurred_at": "2026-11-01T00:00:00+08:00", "account_id": "a", "payload": {"reason": "locked"},
               "future_field": {"nested": [1, 2]}}
    event = EventDecoder().decode(json.dumps(minimal).encode())
    assert event.ip is None and event.geo is None
    assert event.ts == parse_ts_ms("2026-10-31T16:00:00Z")


def _bad(event: dict | bytes) -> BadRecord:
    raw = event if isinstance(event, bytes) else json.dumps(event).encode()
    with pytest.raises(BadRecord) as info:
        EventDecoder(max_bytes=4096).decode(raw)
    assert info.value.reason in BAD_RECORD_REASONS
    return info.value


def test_each_kind_of_bad_record_has_its_reason() -> None:
    """Not JSON, not an object, missing/wrong field, unknown type, bad time, oversize, bad IP."""
    good = ev("deposit.initiated", "a1", T0)
    assert _bad(b"{not json").reason == "not_json"
    assert _bad(b"\xff\xfe\x00").reason == "not_json"
    assert _bad(b"[1,2]").reason == "not_object"
    assert _bad({k: v for k, v in good.items() if k != "event_id"}).reason == "missing_field"
    assert _bad({**good, "payload": {**good["payload"], "tx_id": None}}).reason == "wrong_type"
    assert _bad({**good, "payload": {k: v for k, v in good["payload"].items() if k != "amount_usd"}}).reason == "missing_field"
    assert _bad({**good, "account_id": 42}).reason == "wrong_type"
    assert _bad({**good, "event_type": "deposit.teleported"}).reason == "unknown_event_type"
    assert _bad({**good, "occurred_at": "yesterday"}).reason == "bad_timestamp"
    assert _bad({**good, "occurred_at": "2026-11-01T00:00:00"}).reason == "bad_timestamp"  # no offset
    assert _bad({**good, "schema_version": "2"}).reason == "bad_schema_version"
    assert _bad({**good, "payload": {**good["payload"], "amount": "1,5"}}).reason == "bad_value"
    assert _bad({**good, "ip": "999.1.1.1"}).reason == "bad_ip"
    assert _bad({**good, "user_agent": "x" * 5000}).reason == "oversize"
    bad = _bad({**good, "account_id": ""})
    assert bad.reason == "bad_value" and bad.event_id == good["event_id"]


def test_secret_never_shows_in_repr() -> None:
    """An otpauth URI in an enrolment is redacted from repr (logs, tracebacks)."""
    uri = "otpauth://totp/Wallet:a?secret=JBSWY3DPEHPK3PXP&issuer=Wallet"
    event = EventDecoder().decode(json.dumps(ev("mfa.enrolled", "a", T0, {"otpauth_uri": uri})).encode())
    assert isinstance(event, MfaEnrolled)
    assert event.payload.otpauth_uri == uri
    assert "JBSWY3DPEHPK3PXP" not in repr(event)


def test_iso_ms_round_trips() -> None:
    assert parse_ts_ms(iso_ms(T0 + 123)) == T0 + 123
    assert iso_ms(T0).endswith("Z")


def test_the_kept_copy_of_the_contract_examples_matches_the_shared_one() -> None:
    """tests/data keeps a copy for checkouts without ../shared; it must not drift."""
    from tests.conftest import _SHARED_EXAMPLES, REPO

    if not _SHARED_EXAMPLES.exists():
        import pytest

        pytest.skip("the shared contract folder is not beside this checkout")
    assert (REPO / "tests" / "data" / "contract_examples.jsonl").read_bytes() == _SHARED_EXAMPLES.read_bytes()


@pytest.mark.parametrize(
    "text",
    ["203.0.113.7", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", " 1.2.3.4",
     "2001:db8::1", "::1", "::ffff:1.2.3.4", "fe80::1%eth0", "2001:db8:::1", "2001:db8::g", "1:2:3:4:5:6:7:8:9", ""],
)
def test_an_ip_is_valid_exactly_when_the_ipaddress_module_says_so(text: str) -> None:
    """The fast IPv4 check and the cached check of the rest agree with ``ipaddress``."""
    try:
        ipaddress.ip_address(text)
        expected = True
    except ValueError:
        expected = False
    assert valid_ip(text) is expected
