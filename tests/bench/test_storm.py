"""The attack-storm benchmark's traffic (``bench/storm.py``) is contract traffic, in time order:
the benchmark is only as good as the events it feeds (it is run by hand, never here)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bench.storm import storm_events, write_merged
from secmon.contract import EventDecoder
from tests.helpers.events import HOUR, T0, ev, write_jsonl


def test_the_storm_is_valid_contract_traffic_merged_in_time_order(tmp_path: Path) -> None:
    base = write_jsonl(tmp_path / "base.jsonl", [ev("login.succeeded", f"w{i}", T0 + i * HOUR) for i in range(10)])
    storm, info = storm_events(base, attempts=3_000, bots=200, asns=20, targets=1_500, minutes=10, seed=3)
    assert info["storm_events"] == len(storm) == 3_000 + 2_000  # the attempts, then the brute force
    merged = tmp_path / "merged.jsonl"
    write_merged(base, storm, merged)
    decoder = EventDecoder()
    events = [decoder.decode(line) for line in merged.read_bytes().splitlines()]
    assert len(events) == 10 + 5_000
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    storm_only = [e for e in events if e.event_id.startswith("storm-")]
    assert min(e.ts for e in storm_only) >= T0 + 4 * HOUR  # laid over the middle of the base
    reasons = Counter(getattr(e.payload, "reason", "ok") for e in storm_only)
    assert reasons["unknown_account"] > 2_500 and reasons["bad_password"] > 2_000  # (the brute force: 2,000)
    assert len({e.ip for e in storm_only}) > 150  # the botnet, the data-centre address, the pool
    real = {json.loads(line)["account_id"] for line in base.read_bytes().splitlines()}
    assert {e.account_id for e in storm_only if e.payload.reason == "bad_password"} <= real  # type: ignore[union-attr]
