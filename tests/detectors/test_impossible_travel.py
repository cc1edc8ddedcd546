"""``impossible_travel``: two logins too far apart for the time between them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from secmon.cli import main
from secmon.contract import iso_ms
from secmon.detectors.impossible_travel import ImpossibleTravel
from tests.helpers.detectors import run_events
from tests.helpers.events import DAY, HOUR, MINUTE, T0, ev, geo, write_jsonl

TOKYO = geo("JP", 35.68, 139.69, "Tokyo")
OSAKA = geo("JP", 34.69, 135.50, "Osaka")
LAGOS = geo("NG", 6.52, 3.38, "Lagos")
LONDON = geo("GB", 51.51, -0.13, "London")


def login(account: str, ts: int, where: dict[str, Any] | None, ip: str = "198.51.100.1") -> dict[str, Any]:
    return ev("login.succeeded", account, ts, ip=ip, geo=where)


def run(events: list[dict[str, Any]], **options: Any):  # type: ignore[no-untyped-def]
    return run_events(events, {ImpossibleTravel: options})


def test_tokyo_then_lagos_an_hour_later_is_impossible() -> None:
    events = [login("a", T0, TOKYO), login("a", T0 + HOUR, LAGOS, ip="102.89.1.1")]
    (f,) = run(events).latest()
    assert f.kind == "impossible_travel" and f.account_id == "a"
    assert 13_000 < f.explanation["distance_km"] < 14_000
    assert f.explanation["speed_kmh"] > 13_000 and f.severity == "high"
    assert f.explanation["from"]["country"] == "JP" and f.explanation["to"]["country"] == "NG"
    assert f.evidence == (events[0]["event_id"], events[1]["event_id"])
    assert f.subject.ip == "102.89.1.1"


def test_a_traveller_over_two_days_is_not_impossible() -> None:
    """Hard negative: Tokyo, a flight, London two days later."""
    events = [login("b", T0, TOKYO), login("b", T0 + 2 * DAY, LONDON)]
    assert run(events).records == []


def test_a_long_haul_flight_at_airliner_speed_is_not_impossible() -> None:
    """Tokyo → London (9,600 km) in 13 h: under 800 km/h door to door."""
    events = [login("c", T0, TOKYO), login("c", T0 + 13 * HOUR, LONDON)]
    assert run(events).records == []


def test_nearby_cities_are_never_flagged_however_fast() -> None:
    """Tokyo → Osaka (400 km) in 10 minutes: under the 500 km floor (geolocation noise)."""
    events = [login("d", T0, TOKYO), login("d", T0 + 10 * MINUTE, OSAKA)]
    assert run(events).records == []


def test_logins_without_coordinates_are_skipped_not_guessed() -> None:
    """A login with only a country (or no geo) is no evidence: the located one stays the reference."""
    events = [
        login("e", T0, TOKYO),
        login("e", T0 + 10 * MINUTE, geo("NG")),
        login("e", T0 + 20 * MINUTE, None),
        login("e", T0 + 2 * DAY, LAGOS),
    ]
    assert run(events).records == []


def test_an_attacker_and_the_owner_taking_turns_is_one_finding() -> None:
    events = [login("f", T0 + k * 20 * MINUTE, TOKYO if k % 2 == 0 else LAGOS) for k in range(8)]
    result = run(events)
    assert len(result.latest()) == 1
    assert len(result.records) == 1  # the same severity: no re-issue within the cooldown


def test_thresholds_are_configurable() -> None:
    events = [login("g", T0, TOKYO), login("g", T0 + 10 * MINUTE, OSAKA)]
    (f,) = run(events, min_distance_km=300.0).latest()
    assert f.explanation["min_distance_km"] == 300.0 and f.severity == "medium"


def test_secmon_replay_reports_impossible_travel(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [login("h", T0, TOKYO), login("h", T0 + 30 * MINUTE, LONDON)])
    out = tmp_path / "f.jsonl"
    assert main(["replay", str(path), "--findings", str(out), "--no-progress"]) == 0
    kinds = [json.loads(line)["kind"] for line in out.read_text().splitlines()]
    assert kinds == ["impossible_travel"]


def test_an_escalated_finding_keeps_its_first_seen() -> None:
    """Tokyo → London in 3 h (medium), then London → Lagos 20 minutes later (high): the
    revision lists the new hop, and the finding still starts at the first one."""
    events = [login("h", T0, TOKYO), login("h", T0 + 3 * HOUR, LONDON), login("h", T0 + 3 * HOUR + 20 * MINUTE, LAGOS)]
    first, escalated = run(events).records
    assert (first.severity, escalated.severity, escalated.revision) == ("medium", "high", 1)
    assert first.first_seen == escalated.first_seen == iso_ms(T0)
    assert escalated.evidence == (events[1]["event_id"], events[2]["event_id"])
