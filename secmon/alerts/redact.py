"""Keeping secrets and personal detail out of what the action layer writes and sends.

Detectors already keep TOTP secrets out of findings; this is the second line: every text
the action layer stores (case timeline) or sends (messages, feed records, alerts) passes
:func:`scrub`, which removes ``otpauth://`` URIs and ``secret=`` parameters, whatever their
source.  User-facing text additionally only ever shows a masked IP (:func:`mask_ip`) and a
short, cleaned device description (:func:`device_label`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from secmon.detectors.common import mask_ip as _mask_ip

_OTPAUTH = re.compile(r"otpauth(?:-migration)?://[^\s\"'<>]*", re.IGNORECASE)
_SECRET_PARAM = re.compile(r"(?i)\b(secret|password|token|key)=([^&\s\"'<>]+)")
REDACTED = "[redacted]"


def scrub(text: str) -> str:
    """``text`` with otpauth URIs and ``secret=``/``password=``-style values removed."""
    if "otpauth" in text.lower():
        text = _OTPAUTH.sub("otpauth://" + REDACTED, text)
    if "=" in text:
        text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return text


def scrub_obj(value: Any) -> Any:
    """:func:`scrub` over every string in a JSON-like value (keys included)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_obj(v) for v in value]
    return value


def mask_ip(ip: str | None) -> str | None:
    """An IP with its host part hidden (``203.0.113.x``); None when absent or not an IP."""
    return _mask_ip(ip)


def plain(value: Any, limit: int = 120) -> str:
    """A value made safe for one line of plain text: no control or format characters, no
    markup brackets, no line breaks, at most ``limit`` characters."""
    text = scrub(str(value))
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "C" or ch in "<>":  # Cc control, Cf format (bidi overrides), Cs, Co, Cn
            out.append(" ")
        else:
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"))  # fmt: skip
_SYSTEMS = (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"),
            ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("Linux", "Linux"))  # fmt: skip


def device_label(user_agent: str | None) -> str | None:
    """ "Chrome on Windows" for a browser user agent; otherwise the cleaned agent, shortened.

    The user agent is attacker-controlled: what comes back is plain text of at most 60
    characters, and templates still escape it."""
    if not user_agent:
        return None
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return plain(user_agent, 60) or None
