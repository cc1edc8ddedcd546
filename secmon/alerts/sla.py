"""Case SLAs: when a case of a given priority is due, in wall time or business days.

``"1h"``/``"30m"``/``"2d"`` are plain durations; ``"1bd"`` is one business day: the same
local time on the next working day (weekends and holidays skipped), counted in the support
team's time zone.  A case opened on a non-working day starts its business clock at the
next working day's ``business_day_start``.  Pure functions of their inputs (no wall clock).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from secmon.config import ConfigError

if TYPE_CHECKING:
    from secmon.alerts.settings import CaseSettings

PRIORITIES = ("P1", "P2", "P3", "P4")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^\s*(\d+)\s*(m|h|d|bd)\s*$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True)
class Sla:
    """One priority's SLA: ``amount`` of ``unit`` (``m``, ``h``, ``d`` or ``bd``)."""

    amount: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> Sla:
        m = _DURATION.match(text)
        if not m or int(m.group(1)) <= 0:
            raise ConfigError(f"alerts.cases.sla: {text!r} is not a duration like 30m, 4h, 2d or 1bd")
        return cls(int(m.group(1)), m.group(2))


@dataclass(frozen=True)
class SlaPolicy:
    """Due times per priority on a business calendar."""

    slas: dict[str, Sla]
    tz: ZoneInfo
    workdays: frozenset[int]
    day_start: time
    holidays: frozenset[date]

    @classmethod
    def from_settings(cls, s: CaseSettings) -> SlaPolicy:
        missing = [p for p in PRIORITIES if p not in s.sla]
        unknown = sorted(set(s.sla) - set(PRIORITIES))
        if missing or unknown:
            raise ConfigError(
                f"alerts.cases.sla needs exactly {list(PRIORITIES)} (missing {missing}, unknown {unknown})"
            )
        try:
            tz = ZoneInfo(s.business_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"alerts.cases.business_timezone: unknown time zone {s.business_timezone!r}") from None
        try:
            hh, mm = (int(x) for x in s.business_day_start.split(":"))
            start = time(hh, mm)
            holidays = frozenset(date.fromisoformat(d) for d in s.holidays)
        except ValueError as exc:
            raise ConfigError(f"alerts.cases: {exc}") from None
        if not s.workdays:
            raise ConfigError("alerts.cases.workdays must name at least one day")
        return cls(
            slas={p: Sla.parse(v) for p, v in s.sla.items()},
            tz=tz,
            workdays=frozenset(_WEEKDAYS.index(d) for d in s.workdays),
            day_start=start,
            holidays=holidays,
        )

    def due_ms(self, priority: str, start_ms: int) -> int:
        """When a case of ``priority`` that started at ``start_ms`` is due."""
        sla = self.slas[priority]
        if sla.unit != "bd":
            return start_ms + sla.amount * _UNIT_MS[sla.unit]
        local = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(self.tz)
        if not self._working(local.date()):
            day = self._next_working(local.date())
            local = datetime.combine(day, self.day_start, self.tz)
        day = local.date()
        for _ in range(sla.amount):
            day = self._next_working(day)
        due = datetime.combine(day, local.timetz().replace(tzinfo=None), self.tz)
        return int(due.timestamp() * 1000)

    def _working(self, d: date) -> bool:
        return d.weekday() in self.workdays and d not in self.holidays

    def _next_working(self, d: date) -> date:
        d += timedelta(days=1)
        for _ in range(366):
            if self._working(d):
                return d
            d += timedelta(days=1)
        raise ConfigError("alerts.cases: no working day within a year (workdays/holidays)")


def format_duration(ms: int) -> str:
    """``1d 3h``, ``2h 05m``, ``7m`` (for people: SLA countdowns, times to resolve)."""
    minutes = ms // 60_000
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins:02d}m"
    return f"{mins}m"


def raise_priority(priority: str) -> str:
    """One step more urgent (P1 stays P1)."""
    i = PRIORITIES.index(priority)
    return PRIORITIES[max(0, i - 1)]


def more_urgent(a: str, b: str) -> str:
    return a if PRIORITIES.index(a) <= PRIORITIES.index(b) else b
