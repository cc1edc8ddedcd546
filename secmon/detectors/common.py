"""Small pure helpers shared by detectors: windows, episodes, geography, networks."""

from __future__ import annotations

import ipaddress
import math
from bisect import bisect_left
from functools import lru_cache
from typing import Final, Literal

SEVERITY_RANK: Final = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
#: Severity names by rank (the inverse of ``SEVERITY_RANK``).
SEVERITY_NAMES: Final[tuple[Literal["info", "low", "medium", "high", "critical"], ...]] = (
    "info", "low", "medium", "high", "critical",
)
MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000


def trim_before(times: list[int], horizon_ms: int) -> None:
    """Drop, in place, the leading timestamps of a sorted list older than ``horizon_ms``."""
    if times and times[0] < horizon_ms:
        del times[: bisect_left(times, horizon_ms)]


def push_bounded(times: list[int], ts: int, cap: int) -> None:
    """Append ``ts`` keeping at most ``cap`` newest entries (state stays bounded)."""
    times.append(ts)
    if len(times) > cap:
        del times[: len(times) - cap]


def push_recent(items: list[str], item: str, cap: int) -> None:
    """Append an id keeping at most ``cap`` newest (bounded evidence lists)."""
    items.append(item)
    if len(items) > cap:
        del items[: len(items) - cap]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


@lru_cache(maxsize=65536)
def subnet_of(ip: str) -> str | None:
    """The /24 (IPv4) or /64 (IPv6) network of an address, as text; None if not an IP."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


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
