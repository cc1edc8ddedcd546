"""The worker's record → event step (``Worker._record_decoder``): records a fetch process
decoded are unpacked, its rejections become the same dead-letter reasons, and bytes are
decoded in the worker as from kafka-python's own consumer."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from secmon.contract import BadRecord, EventDecoder
from secmon.runtime.worker import Worker
from secmon.sources.fetch_process import FetchedRecord, ProcessConsumer, Rejected
from tests.helpers.events import T0, ev


def _decoder(consumer: Any) -> Any:
    worker: Any = SimpleNamespace(decoder=EventDecoder(max_bytes=1_000))
    return Worker._record_decoder(worker, consumer)


def _fetched(**fields: Any) -> FetchedRecord:
    return FetchedRecord("auth.events", 0, 7, T0, b"acct-1", **fields)


def test_a_fetch_process_record_is_unpacked_rejected_or_decoded_here() -> None:
    decode = _decoder(ProcessConsumer.__new__(ProcessConsumer))  # its methods are not called
    raw = json.dumps(ev("login.failed", "acct-1", T0)).encode()
    expected = EventDecoder().decode(raw)
    # As it crosses the pipe: msgpack, so the account id is a fresh string, not interned.
    event = msgspec.msgpack.Decoder(FetchedRecord).decode(msgspec.msgpack.encode(_fetched(value=None, event=expected))).event
    got = decode(_fetched(value=None, event=event))
    assert got == expected and got.ts == expected.ts
    assert got.account_id is sys.intern("acct-1")
    with pytest.raises(BadRecord) as bad:
        decode(_fetched(value=b"{not json", rejected=Rejected("not_json", "malformed", None)))
    assert (bad.value.reason, bad.value.detail, bad.value.event_id) == ("not_json", "malformed", None)
    assert decode(_fetched(value=raw)) == expected  # handed over as bytes
    with pytest.raises(BadRecord) as big:
        decode(_fetched(value=raw + b" " * 1_000))
    assert big.value.reason == "oversize"


def test_a_kafka_python_record_is_decoded_here() -> None:
    decode = _decoder(SimpleNamespace())
    raw = json.dumps(ev("login.succeeded", "acct-2", T0)).encode()
    assert decode(SimpleNamespace(value=raw)) == EventDecoder().decode(raw)
    with pytest.raises(BadRecord) as bad:
        decode(SimpleNamespace(value=b"[]"))
    assert bad.value.reason == "not_object"


@pytest.mark.parametrize("consumer", [SimpleNamespace(), ProcessConsumer.__new__(ProcessConsumer)])
def test_a_tombstone_is_a_bad_value_not_a_crash(consumer: Any) -> None:
    """A record with no value (a tombstone) cannot be decoded: dead-lettered as ``bad_value``."""
    decode = _decoder(consumer)
    with pytest.raises(BadRecord) as bad:
        decode(SimpleNamespace(value=None, event=None, rejected=None))
    assert (bad.value.reason, bad.value.event_id) == ("bad_value", None)
    assert bad.value.detail.startswith("TypeError: ")
