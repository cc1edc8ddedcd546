"""The dead-letter record: a bad input with its origin and a machine-readable reason."""

from __future__ import annotations

import base64
import re

import msgspec

#: TOTP secrets never leave secmon, not even inside a dead letter: the ``secret``
#: parameter of an otpauth URI is replaced before the original is stored.
_OTPAUTH_SECRET = re.compile(rb"(otpauth(?:%3A|:)[^\"\s]*?(?:[?&]|%3F|%26)secret(?:=|%3D))[^&\"\s%]*", re.I)


class DeadLetter(msgspec.Struct, kw_only=True):
    """What ``secmon.dlq`` (or a replay's dead-letter file) holds for one bad record.

    ``original`` is the record's bytes as UTF-8 text when they are valid UTF-8, else
    base64 (``original_encoding`` says which), so nothing is lost and the record can be
    fixed and re-sent.
    """

    reason: str
    detail: str
    topic: str
    partition: int | None
    offset: int
    key: str | None = None
    event_id: str | None = None
    original: str
    original_encoding: str = "utf8"
    size: int = 0
    #: True when a secret (an otpauth ``secret=``) was masked in ``original``.
    redacted: bool = False

    @classmethod
    def of(
        cls,
        raw: bytes,
        *,
        reason: str,
        detail: str,
        topic: str,
        partition: int | None,
        offset: int,
        key: bytes | None = None,
        event_id: str | None = None,
    ) -> DeadLetter:
        size = len(raw)
        masked = _OTPAUTH_SECRET.sub(rb"\1REDACTED", raw)
        redacted = masked != raw
        raw = masked
        try:
            original, encoding = raw.decode("utf-8"), "utf8"
        except UnicodeDecodeError:
            original, encoding = base64.b64encode(raw).decode("ascii"), "base64"
        return cls(
            reason=reason,
            detail=detail,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key.decode("utf-8", "replace") if key is not None else None,
            event_id=event_id,
            original=original,
            original_encoding=encoding,
            size=size,
            redacted=redacted,
        )

    def original_bytes(self) -> bytes:
        if self.original_encoding == "base64":
            return base64.b64decode(self.original)
        return self.original.encode("utf-8")

    def dedup_key(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


_enc = msgspec.json.Encoder()


def encode_dead_letter(dl: DeadLetter) -> bytes:
    return _enc.encode(dl)
