"""``weak_password``: a breached or very weak password was set."""

from __future__ import annotations

from typing import Any

from secmon.detectors.weak_password import WeakPassword
from tests.helpers.detectors import run_events
from tests.helpers.events import T0, ev


def changed(account: str, strength: int, breached: bool) -> dict[str, Any]:
    return ev("password.changed", account, T0, {"via": "settings", "strength": strength, "breached": breached})


def test_breached_and_very_weak_passwords_are_reported() -> None:
    found = run_events([changed("a", 3, True), changed("b", 1, False), changed("c", 0, True)],
                       {WeakPassword: {}}).latest()
    assert [(f.account_id, f.severity) for f in found] == [("a", "medium"), ("b", "low"), ("c", "medium")]
    assert found[2].explanation == {"breached": True, "strength": 0, "max_weak_strength": 1, "via": "settings"}


def test_a_strong_unbreached_password_is_fine() -> None:
    assert run_events([changed("d", 2, False), changed("e", 4, False)], {WeakPassword: {}}).records == []


def test_the_strength_threshold_is_configurable() -> None:
    assert run_events([changed("f", 2, False)], {WeakPassword: {"max_weak_strength": 2}}).kinds() == ["weak_password"]
