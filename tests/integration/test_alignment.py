"""Event-time alignment: while a worker catches up a backlog, account partitions that run
ahead in event time are paused until the slowest catches up, and nothing stalls or is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.events import MINUTE, T0, ev, geo
from tests.integration.harness import Deployment, wait_until

pytestmark = [pytest.mark.integration]


def test_partitions_ahead_are_paused_and_every_event_is_processed(
    broker: str, tmp_path: Path, sqlite_url: str
) -> None:
    # Polls of at most 1,000 records: the backlog takes many worker loops (alignment is
    # decided once per loop; with 10,000 it could all be read in a few, with no pause needed).
    dep = Deployment(broker, tmp_path, sqlite_url, extra={"engine": {"max_partition_skew_ms": 10 * MINUTE},
                                                          "kafka": {"max_poll_records": 1000}})
    dep.create_topics()
    # Eight hours of logins of 60 accounts (spread over the 4 partitions), produced as a
    # backlog: fetches return one partition's records at a time, hours of event time apart.
    events = [ev("login.succeeded", f"acct-{a:02d}", T0 + t * 2 * MINUTE + a * 1000,
                 ip=f"198.51.100.{a + 1}", asn=64500, geo=geo("SG", 1.35, 103.8))
              for t in range(240) for a in range(60)]  # fmt: skip
    # ... and a sprayer on one ASN near the end, across accounts of every partition
    events += [ev("login.failed", f"acct-{a:02d}", T0 + 479 * MINUTE + a * 1000, {"reason": "bad_password"},
                  ip="203.0.113.9", asn=64666, geo=geo("NL", 52.37, 4.9)) for a in range(40)]  # fmt: skip
    events.sort(key=lambda e: e["occurred_at"])
    try:
        worker = dep.start_worker("w")
        worker.wait_ready()
        dep.produce(events)
        assert wait_until(lambda: worker.metric("secmon_events_consumed_total") == len(events), timeout_s=120)
        assert worker.metric("secmon_alignment_pauses_total") > 0
        assert wait_until(lambda: worker.metric("secmon_aligned_partitions") == 0, timeout_s=30)
        assert wait_until(lambda: any(r.key and b"credential_stuffing" in r.value
                                      for r in dep.read("secmon.findings")), timeout_s=60)
    finally:
        dep.stop_all()
