"""What a support agent may see: masked account ids and IPs, no raw evidence.

Support works cases with callers on the phone; they need the story (what happened, the key
numbers) but not identifiers that would let a social engineer harvest accounts or addresses.
Security analysts and admins see raw values.  Masking is applied to whole response objects
(:func:`mask_obj`), so a field added later is masked by default when it is a string.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from secmon.alerts.redact import mask_ip

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")
_ACCOUNT_KEYS = frozenset({"account_id", "account", "to_account", "accounts", "members"})
_IP_KEYS = frozenset({"ip", "ips", "source_ip", "client_ip"})
_DROP_KEYS = frozenset({"evidence", "token_id", "to_address", "address", "device_id", "user_agent"})


def mask_account(account_id: str | None) -> str | None:
    """``acct-123456`` → ``ac…56``: enough to match what a caller says, not to harvest."""
    if account_id is None:
        return None
    n = len(account_id)
    keep = 2 if n >= 8 else 1 if n >= 4 else 0
    return f"{account_id[:keep]}…{account_id[-keep:]}" if keep else "…"


def _mask_ip_text(m: re.Match[str]) -> str:
    text = m.group(0)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return text  # e.g. a time of day "10:00:00"
    return mask_ip(text) or "…"


def mask_text(text: str, accounts: Iterable[str] = ()) -> str:
    """``text`` with IP addresses and the given account ids masked."""
    for account in sorted({a for a in accounts if a}, key=len, reverse=True):
        text = text.replace(account, mask_account(account) or "…")
    text = _IPV4.sub(_mask_ip_text, text)
    return _IPV6.sub(_mask_ip_text, text)


def mask_obj(value: Any, accounts: Iterable[str] = (), key: str | None = None) -> Any:
    """A JSON-like value with account ids and IPs masked and raw evidence fields dropped."""
    accounts = tuple(accounts)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _DROP_KEYS:
                continue
            out[k] = mask_obj(v, accounts, k)
        return out
    if isinstance(value, list | tuple):
        return [mask_obj(v, accounts, key) for v in value]
    if isinstance(value, str):
        if key in _ACCOUNT_KEYS:
            return mask_account(value)
        if key in _IP_KEYS:
            return mask_ip(value) or "…"
        return mask_text(value, accounts)
    return value


def key_numbers(explanation: dict[str, Any], limit: int = 8) -> dict[str, float | int]:
    """The numbers behind a finding (counts, windows, thresholds, scores), top level only."""
    out: dict[str, float | int] = {}
    for k, v in explanation.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or k in _ACCOUNT_KEYS:
            continue
        out[str(k)] = round(v, 4) if isinstance(v, float) else v
        if len(out) >= limit:
            break
    return out
