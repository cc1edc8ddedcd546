"""HTTP delivery shared by the webhook and Alertmanager sinks: one POST, one outcome.

Outcomes follow what the status means for *this* peer: 2xx delivered; 429 and 502/503/504
(or no connection at all) mean the peer is unavailable — the channel pauses, honouring
``Retry-After``; 408 and other 5xx are retried; any other 4xx is permanent (a message the
peer will never take).  Redirects are not followed: a POST must not silently become a GET.

Signing (generic webhooks): ``X-Secmon-Signature: t=<unix seconds>,v1=<hex>`` where
``hex = HMAC-SHA256(secret, f"{t}.{body}")``, like Stripe's scheme.  Receivers recompute it
over the raw body, compare in constant time and reject ``t`` older than a few minutes
(:func:`verify_signature` does exactly that).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from secmon.alerts.sinks.base import DELIVERED, Failed, Outcome, Retry

SIGNATURE_HEADER = "X-Secmon-Signature"
_PEER_DOWN = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # the 3xx surfaces as an HTTPError: a permanent failure (fix the URL)


_opener = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpReply:
    """POST ``body``; an HTTP error status is a reply, a connection problem raises ``OSError``."""
    req = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _opener.open(req, timeout=timeout_s) as resp:
            return HttpReply(resp.status, dict(resp.headers.items()), resp.read(65536))
    except urllib.error.HTTPError as err:
        try:
            data = err.read(65536)
        except OSError:
            data = b""
        return HttpReply(err.code, dict(err.headers.items()) if err.headers else {}, data)


def retry_after_ms(value: str | None, now_s: float | None = None) -> int | None:
    """``Retry-After`` (delta seconds or an HTTP date) in milliseconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    now = time.time() if now_s is None else now_s
    return max(0, int((when - now) * 1000))


def outcome_of(reply: HttpReply) -> Outcome:
    status = reply.status
    if 200 <= status < 300:
        return DELIVERED
    snippet = reply.body[:200].decode("utf-8", "replace")
    error = f"HTTP {status}: {snippet}"
    if status in _PEER_DOWN:
        header = next((v for k, v in reply.headers.items() if k.lower() == "retry-after"), None)
        return Retry(error, retry_after_ms(header), peer_down=True)
    if status == 408 or status >= 500:
        return Retry(error)
    return Failed(error)


def unreachable(exc: BaseException) -> Retry:
    return Retry(f"{type(exc).__name__}: {exc}", peer_down=True)


def delivery_id(dedup_key: str) -> str:
    """A stable, header-safe id of an outbox message (its idempotency key)."""
    return hashlib.blake2b(dedup_key.encode(), digest_size=16).hexdigest()


def signature_header(secret: bytes, body: bytes, t: int) -> str:
    mac = hmac.new(secret, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: bytes, header: str, body: bytes, *, now_s: float | None = None,
                     tolerance_s: int = 300) -> bool:  # fmt: skip
    """Whether ``header`` signs ``body`` with ``secret`` and is fresh (for receivers and tests)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    now = time.time() if now_s is None else now_s
    if abs(now - t) > tolerance_s:
        return False
    want = hmac.new(secret, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, given)
