"""Case SLAs: plain durations and business days on a calendar."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from secmon.alerts.settings import CaseSettings
from secmon.alerts.sla import Sla, SlaPolicy, more_urgent, raise_priority
from secmon.config import ConfigError


def ms(*args: int, tz: ZoneInfo | None = None) -> int:
    return int(datetime(*args, tzinfo=tz or UTC).timestamp() * 1000)  # type: ignore[misc, arg-type]


def policy(**options: object) -> SlaPolicy:
    return SlaPolicy.from_settings(CaseSettings(**options))  # type: ignore[arg-type]


def test_default_slas_p1_one_hour_p2_four_hours() -> None:
    """P1 and P2 are wall-clock hours, whatever the day."""
    p = policy()
    sat = ms(2026, 11, 7, 23, 30)
    assert p.due_ms("P1", sat) == sat + 3_600_000
    assert p.due_ms("P2", sat) == sat + 4 * 3_600_000


def test_one_business_day_skips_the_weekend() -> None:
    """P3 opened Friday 15:00 is due Monday 15:00; P4 (3 business days) Wednesday 15:00."""
    p = policy()
    fri = ms(2026, 11, 6, 15, 0)
    assert p.due_ms("P3", fri) == ms(2026, 11, 9, 15, 0)
    assert p.due_ms("P4", fri) == ms(2026, 11, 11, 15, 0)


def test_opened_on_a_weekend_starts_at_the_next_working_morning() -> None:
    """A Saturday case's business clock starts Monday 09:00, so 1bd is Tuesday 09:00."""
    p = policy()
    assert p.due_ms("P3", ms(2026, 11, 7, 22, 0)) == ms(2026, 11, 10, 9, 0)


def test_holidays_and_time_zone_are_honoured() -> None:
    """Business days count in the support team's zone and skip listed holidays."""
    sh = ZoneInfo("Asia/Shanghai")
    p = policy(business_timezone="Asia/Shanghai", holidays=["2026-11-09"])
    fri = ms(2026, 11, 6, 17, 0, tz=sh)
    assert p.due_ms("P3", fri) == ms(2026, 11, 10, 17, 0, tz=sh)


def test_custom_durations() -> None:
    p = policy(sla={"P1": "15m", "P2": "2h", "P3": "2d", "P4": "5bd"})
    t = ms(2026, 11, 2, 10, 0)  # Monday
    assert p.due_ms("P1", t) == t + 15 * 60_000
    assert p.due_ms("P3", t) == t + 2 * 86_400_000
    assert p.due_ms("P4", t) == ms(2026, 11, 9, 10, 0)


@pytest.mark.parametrize(
    "options",
    [
        {"sla": {"P1": "1h", "P2": "4h", "P3": "1bd"}},
        {"sla": {"P1": "soon", "P2": "4h", "P3": "1bd", "P4": "3bd"}},
        {"sla": {"P1": "0h", "P2": "4h", "P3": "1bd", "P4": "3bd"}},
        {"business_timezone": "Mars/Olympus"},
        {"holidays": ["not-a-date"]},
        {"workdays": []},
    ],
)
def test_bad_sla_settings_fail_at_start(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        policy(**options)


def test_priority_helpers() -> None:
    assert raise_priority("P4") == "P3" and raise_priority("P1") == "P1"
    assert more_urgent("P3", "P2") == "P2" and more_urgent("P1", "P4") == "P1"
    assert Sla.parse(" 3bd ") == Sla(3, "bd")
