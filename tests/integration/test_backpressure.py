"""A sink that is down delays delivery but loses nothing, and consumption pauses once the
outbox holds more than ``delivery.max_pending`` undelivered messages, then resumes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from secmon.net import free_port
from tests.helpers.events import MINUTE, T0, ev
from tests.integration.harness import Deployment, wait_until

pytestmark = [pytest.mark.integration]


class _Collector(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_outbox_bound_pauses_consumption_until_the_sink_is_back(
    broker: str, tmp_path: Path, sqlite_url: str
) -> None:
    port = free_port()
    dep = Deployment(broker, tmp_path, sqlite_url, extra={
        "delivery": {"max_pending": 20, "lease_ms": 3000},
        "kafka": {"max_poll_records": 50},
        "alerts": {"feed": {"webhooks": [{"name": "siem", "url": f"http://127.0.0.1:{port}/hook",
                                          "secret": "s3cret", "min_severity": "info"}]}},
    })
    dep.create_topics()
    # 2,000 weak passwords: 2,000 findings, each a webhook message for a SIEM that is down.
    events = [ev("password.changed", f"bp-{i:04d}", T0 + i * MINUTE, {"strength": 0, "breached": True})
              for i in range(2000)]
    try:
        worker = dep.start_worker("w")
        worker.wait_ready()
        dep.produce(events)
        assert wait_until(lambda: worker.metric("secmon_backpressure_paused") == 1, timeout_s=60)
        time.sleep(1)  # the batch in hand when the bound was crossed is finished
        consumed_while_paused = worker.metric("secmon_events_consumed_total")
        time.sleep(3)
        assert worker.metric("secmon_events_consumed_total") == consumed_while_paused < len(events)
        assert worker.metric("secmon_backpressure_paused") == 1

        _Collector.received = []
        server = ThreadingHTTPServer(("127.0.0.1", port), _Collector)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            assert wait_until(lambda: worker.metric("secmon_events_consumed_total") == len(events), timeout_s=120)
            assert wait_until(lambda: len(_Collector.received) >= len(events), timeout_s=120)
            ids = [r["finding"]["finding_id"] for r in _Collector.received]
            assert len(ids) == len(set(ids)) == len(events)  # each once, none lost
            assert wait_until(lambda: worker.metric("secmon_backpressure_paused") == 0, timeout_s=30)
        finally:
            server.shutdown()
    finally:
        dep.stop_all()
