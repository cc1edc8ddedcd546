"""HTTP outcomes, Retry-After and the webhook signature scheme."""

from __future__ import annotations

from email.utils import formatdate

from secmon.alerts.sinks.base import Delivered, Failed, Retry
from secmon.alerts.sinks.http import (
    HttpReply,
    delivery_id,
    outcome_of,
    post,
    retry_after_ms,
    signature_header,
    verify_signature,
)
from tests.alerts.conftest import HttpReceiver


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_ms("7") == 7000
    assert retry_after_ms(formatdate(1_000_030, usegmt=True), now_s=1_000_000) == 30_000
    assert retry_after_ms("soon") is None and retry_after_ms(None) is None


def test_status_codes_map_to_outcomes() -> None:
    def out(status: int, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return outcome_of(HttpReply(status, headers or {}, b"nope"))

    assert isinstance(out(202), Delivered)
    limited = out(429, {"Retry-After": "3"})
    assert isinstance(limited, Retry) and limited.peer_down and limited.retry_after_ms == 3000
    assert isinstance(out(503), Retry) and out(503).peer_down  # type: ignore[union-attr]
    assert isinstance(out(500), Retry) and not out(500).peer_down  # type: ignore[union-attr]
    assert isinstance(out(408), Retry)
    assert isinstance(out(400), Failed) and isinstance(out(404), Failed)


def test_signature_round_trip_freshness_and_tampering() -> None:
    body = b'{"a":1}'
    header = signature_header(b"key", body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(b"key", header, body, now_s=1_700_000_100)
    assert not verify_signature(b"key", header, body + b" ", now_s=1_700_000_100)
    assert not verify_signature(b"other", header, body, now_s=1_700_000_100)
    assert not verify_signature(b"key", header, body, now_s=1_700_001_000)  # replayed too late
    assert not verify_signature(b"key", "garbage", body)


def test_post_does_not_follow_redirects(http_receiver: HttpReceiver) -> None:
    """A POST must not silently turn into a GET elsewhere: a 3xx is a permanent failure."""
    http_receiver.responses.append((302, {"Location": "http://127.0.0.1:9/elsewhere"}))
    reply = post(http_receiver.url, b"{}", {"Content-Type": "application/json"}, 5)
    assert reply.status == 302 and isinstance(outcome_of(reply), Failed)


def test_delivery_id_is_stable_and_header_safe() -> None:
    assert delivery_id("case:1:member:账户") == delivery_id("case:1:member:账户")
    assert delivery_id("a").isascii() and len(delivery_id("a")) == 32
