"""The webhook sink against a real HTTP server: signed, idempotent, honest about outages."""

from __future__ import annotations

from secmon.alerts.sinks.base import Delivered, Failed, Retry
from secmon.alerts.sinks.http import delivery_id, verify_signature
from secmon.alerts.sinks.webhook import WebhookSink
from secmon.net import free_port
from secmon.store.outbox import OutboxItem
from tests.alerts.conftest import HttpReceiver


def item(i: int, body: bytes = b'{"n":1}') -> OutboxItem:
    return OutboxItem(id=i, channel="webhook.siem", dedup_key=f"f{i}:0", msg_key=None, payload=body, attempts=0,
                      created_ms=0)  # fmt: skip


def test_signed_requests_with_an_idempotency_key(http_receiver: HttpReceiver) -> None:
    sink = WebhookSink("webhook.siem", http_receiver.url, secret="s3cret", bearer="tok", clock_s=lambda: 1_800_000_000)
    assert sink.deliver([item(1), item(2, b'{"n":2}')]) == [Delivered(), Delivered()]
    first, second = http_receiver.received
    assert first.body == b'{"n":1}' and second.json() == {"n": 2}
    assert first.headers["Idempotency-Key"] == delivery_id("f1:0") == first.headers["X-Secmon-Delivery"]
    assert first.headers["Authorization"] == "Bearer tok"
    assert verify_signature(b"s3cret", first.headers["X-Secmon-Signature"], first.body, now_s=1_800_000_010)
    assert not verify_signature(b"s3cret", first.headers["X-Secmon-Signature"], second.body, now_s=1_800_000_010)


def test_rate_limited_peer_pauses_the_rest_of_the_batch(http_receiver: HttpReceiver) -> None:
    http_receiver.responses.append((200, {}))
    http_receiver.responses.append((429, {"Retry-After": "2"}))
    out = WebhookSink("w", http_receiver.url).deliver([item(1), item(2), item(3)])
    assert out[0] == Delivered()
    assert all(isinstance(o, Retry) and o.peer_down and o.retry_after_ms == 2000 for o in out[1:])
    assert len(http_receiver.received) == 1  # the third was not even tried


def test_rejected_message_fails_permanently_and_the_next_one_goes(http_receiver: HttpReceiver) -> None:
    http_receiver.responses.append((422, {}))
    out = WebhookSink("w", http_receiver.url).deliver([item(1), item(2)])
    assert isinstance(out[0], Failed) and out[1] == Delivered()


def test_nobody_listening_means_peer_down() -> None:
    out = WebhookSink("w", f"http://127.0.0.1:{free_port()}/hook", timeout_s=2).deliver([item(1), item(2)])
    assert all(isinstance(o, Retry) and o.peer_down for o in out)
