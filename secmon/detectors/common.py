"""Small pure helpers shared by detectors: windows, episodes, geography, networks."""

from __future__ import annotations

import math
import socket
import struct
import zlib
from bisect import bisect_left
from functools import lru_cache
from typing import Final, Literal, TypeVar

SEVERITY_RANK: Final = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
#: Severity names by rank (the inverse of ``SEVERITY_RANK``).
SEVERITY_NAMES: Final[tuple[Literal["info", "low", "medium", "high", "critical"], ...]] = (
    "info", "low", "medium", "high", "critical",
)
MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000

T = TypeVar("T")


def count_from(times: tuple[int, ...] | list[int], horizon_ms: int) -> int:
    """How many of the sorted timestamps ``times`` are at or after ``horizon_ms``."""
    if not times or times[0] >= horizon_ms:
        return len(times)
    return len(times) - bisect_left(times, horizon_ms)


def push_bounded(times: list[int], ts: int, cap: int) -> None:
    """Append ``ts`` keeping at most ``cap`` newest entries (state stays bounded)."""
    times.append(ts)
    if len(times) > cap:
        del times[: len(times) - cap]


def push_recent(items: list[T], item: T, cap: int) -> None:
    """Append an item keeping at most ``cap`` newest (bounded evidence lists)."""
    items.append(item)
    if len(items) > cap:
        del items[: len(items) - cap]


def pushed(items: tuple[T, ...], item: T, cap: int) -> tuple[T, ...]:
    """``items`` plus ``item``, keeping the ``cap`` newest: :func:`push_recent` for state
    kept as a tuple.  Tuples suit short lists that most keys leave empty (the empty tuple is
    shared; an empty list costs 56 bytes per key) or rarely change."""
    out = (*items, item)
    return out[len(out) - cap :] if len(out) > cap else out


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def subnet_of(ip: str) -> str | None:
    """The /24 (IPv4) or /64 (IPv6) network of an address, as text; None if not an IP.

    Same text as ``ipaddress`` gives (RFC 5952 compression), but with the strict C parser
    ``inet_pton``: mobile carriers hand out a new address per session, so this runs for a
    good share of logins, mostly for an address seen once.  An IPv4 address is therefore not
    cached (checking and cutting it costs less than a cache miss among 10^5 addresses);
    an IPv6 one, whose text takes longer to build, is."""
    if ":" in ip:
        return _subnet6(ip)
    try:
        socket.inet_pton(socket.AF_INET, ip)
    except (OSError, ValueError):
        return None
    return ip.rpartition(".")[0] + ".0/24"


def subnet_of_valid(ip: str) -> str | None:
    """:func:`subnet_of` for an address the event decoder has already checked (an event's or
    a forwarded record's ``ip``): an IPv4 address is cut without parsing it again, which
    halves the cost of the commonest case (every login at the source tasks)."""
    if ":" in ip:
        return _subnet6(ip)
    return ip.rpartition(".")[0] + ".0/24"


@lru_cache(maxsize=16384)
def _subnet6(ip: str) -> str | None:
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])
    except (OSError, ValueError):
        return None
    groups = _NETWORK_GROUPS(packed)
    n = 4
    while n and groups[n - 1] == 0:
        n -= 1  # trailing zero groups join the host half's run, which is compressed to "::"
    return _NETWORK_FORMATS[n].format(*groups)


#: The four 16-bit groups of an IPv6 address's network half, and the /64's text by how many
#: of them are left before the "::".
_NETWORK_GROUPS: Final = struct.Struct(">4H").unpack_from
_NETWORK_FORMATS: Final = ("::/64", "{:x}::/64", "{:x}:{:x}::/64", "{:x}:{:x}:{:x}::/64", "{:x}:{:x}:{:x}:{:x}::/64")


def device_print(device_id: str | None, ip: str | None) -> int:
    """A 32-bit fingerprint of a device (or, without a device id, of its /24 or /64): small
    enough to keep a few per account; 0 when there is nothing to go on.  ``ip`` is an event's,
    which the decoder checked."""
    if device_id:
        return zlib.crc32(device_id.encode())
    net = subnet_of_valid(ip) if ip else None
    return zlib.crc32(net.encode()) if net else 0


def count_by(keys: list[int], counts: list[int], key: int, cap: int) -> None:
    """One more for ``key`` in parallel lists (most recent key last, at most ``cap`` keys):
    a bounded per-device tally that serialises as two short lists."""
    if keys and keys[-1] == key:
        counts[-1] += 1
        return
    n = 1
    if key in keys:
        i = keys.index(key)
        n += counts[i]
        del keys[i], counts[i]
    elif len(keys) >= cap:
        del keys[0], counts[0]
    keys.append(key)
    counts.append(n)


def settle(keys: list[int], counts: list[int], key: int) -> int:
    """Remove ``key`` from parallel lists kept by :func:`count_by`; returns its count."""
    if key not in keys:
        return 0
    i = keys.index(key)
    n = counts[i]
    del keys[i], counts[i]
    return n


def mask_ip(ip: str | None) -> str | None:
    """An IP with the host part hidden (for user-facing text: never a full IP)."""
    if not ip:
        return None
    net = subnet_of(ip)
    if net is None:
        return None
    base = net.split("/")[0]
    return base.rsplit(".", 1)[0] + ".x" if "." in base else base.rstrip(":") + ":…"


def pct(x: float) -> str:
    """A probability as a short human percentage ("0.37%")."""
    return f"{x * 100:.2g}%" if x < 0.01 else f"{x * 100:.1f}%"


def tier_rank(value: float, tiers: tuple[float, ...] | list[float], base: int = 1) -> int:
    """``base`` plus one for each threshold in ``tiers`` that ``value`` reaches (capped at 4).

    Detectors map a count or an amount to a severity rank with it: e.g. failures with tiers
    (10, 50, 500) give low below 10, then medium, high, critical.
    """
    rank = base
    for tier in tiers:
        if value >= tier:
            rank += 1
    return rank if rank < 4 else 4


def update_due(
    prev_rank: int, new_rank: int, last_emit_ms: int, now_ms: int, cooldown_ms: int, grew: bool
) -> bool:
    """Whether an open finding deserves a new revision: its severity rose, or (after a
    cooldown) its evidence grew substantially.  Keeps a 2,000-event attack at a handful of
    revisions of one finding."""
    return new_rank > prev_rank or (grew and now_ms - last_emit_ms >= cooldown_ms)
