"""An IP attacking 200 accounts spread over 4 partitions and 2 workers is one attacker.

Login failures are forwarded through the repartition topic keyed by source, so the source
task that owns the attacker's key sees every attempt whichever worker consumed them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.events import SECOND, T0, ev, geo
from tests.integration.harness import Deployment, wait_until

pytestmark = [pytest.mark.integration]

ATTACKER = "203.0.113.77"


def stuffing_events() -> list[dict]:
    events = []
    for i in range(200):
        acct = f"victim-{i:03d}"
        events.append(ev("login.failed", acct, T0 + i * 3 * SECOND, {"reason": "bad_password"},
                         ip=ATTACKER, asn=64666, geo=geo("NL", 52.37, 4.9)))
    # ordinary traffic on other IPs, so every partition moves on in event time
    for i in range(200):
        acct = f"user-{i:03d}"
        events.append(ev("login.succeeded", acct, T0 + 700 * SECOND + i * SECOND,
                         ip=f"198.51.100.{i % 250 + 1}", asn=64500, geo=geo("SG", 1.35, 103.8)))
    return events


def test_one_attacker_across_partitions_and_workers(broker: str, tmp_path: Path, sqlite_url: str) -> None:
    dep = Deployment(broker, tmp_path, sqlite_url)
    dep.create_topics()
    try:
        a, b = dep.start_worker("a"), dep.start_worker("b")
        a.wait_ready()
        b.wait_ready()
        assert wait_until(lambda: a.metric("secmon_assigned_partitions") > 0
                          and b.metric("secmon_assigned_partitions") > 0, timeout_s=40)
        events = stuffing_events()
        partitions_hit = set()
        dep.produce(events)
        assert wait_until(lambda: any(json.loads(r.value)["kind"] == "credential_stuffing"
                                      for r in dep.read("secmon.findings")), timeout_s=60)
        # both workers consumed part of the attack
        assert a.metric("secmon_events_consumed_total", event_type="login.failed") > 0
        assert b.metric("secmon_events_consumed_total", event_type="login.failed") > 0
        stuffing = [json.loads(r.value) for r in dep.read("secmon.findings", settle_s=3)]
        stuffing = [f for f in stuffing if f["kind"] == "credential_stuffing" and f["subject"].get("ip") == ATTACKER]
        assert len({f["finding_id"] for f in stuffing}) == 1
        finding = max(stuffing, key=lambda f: f["revision"])
        assert finding["account_id"] is None
        assert finding["explanation"]["accounts"] >= 15
        for rec in dep.read("auth.events"):
            partitions_hit.add(rec.partition)
        assert partitions_hit == {0, 1, 2, 3}
    finally:
        dep.stop_all()
