"""Fixtures for the action layer: a migrated store (SQLite and PostgreSQL), findings, and
real local peers — an SMTP server (aiosmtpd), an HTTP receiver (http.server in a thread)
and Alertmanager (the Debian binary, skipped with a message when absent)."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from secmon.alerts import wiring
from secmon.alerts.wiring import ActionLayer
from secmon.config import Config, load_config
from secmon.contract import Finding, Subject
from secmon.detectors.base import make_finding
from secmon.metrics import Metrics
from secmon.net import free_port
from secmon.runtime.commit import BatchCommitter, FeedEffects
from secmon.store.checkpoints import CheckpointStore
from secmon.store.db import open_database
from tests.helpers.events import T0
from tests.helpers.waiting import wait_until as _wait_until

NOT_ME_KEY = "test-not-me-signing-key-0123456789"
#: Wall-clock "now" of the tests that pass time explicitly (a Wednesday, 2026-11-04 10:00 UTC).
NOW = T0 + 3 * 86_400_000 + 10 * 3_600_000


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated store on SQLite and on PostgreSQL."""
    eng = open_database(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    eng = open_database(sqlite_url)
    yield eng
    eng.dispose()


def config(**alerts: Any) -> Config:
    """A config whose ``alerts`` section is ``alerts`` plus a not-me signing key."""
    section = dict(alerts)
    n = dict(section.get("notifications", {}))
    n.setdefault("not_me", {"signing_key": NOT_ME_KEY})
    section["notifications"] = n
    return load_config(None, {"alerts": section})


class Clock:
    """A settable wall clock (ms) for the parts that read one."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def layer_for(engine: Engine, cfg: Config | None = None, clock: Clock | None = None,
              metrics: Metrics | None = None) -> ActionLayer:  # fmt: skip
    return wiring.build_action_layer(cfg or config(), engine, metrics or Metrics(), clock=clock or Clock())


def committer(engine: Engine, layer: ActionLayer) -> BatchCommitter:
    """The core's batch commit with the finding gate, the feed and the action layer."""
    return BatchCommitter(engine, CheckpointStore(engine, "test"), [FeedEffects(), layer.effects()])


def finding(
    kind: str,
    account: str | None = "acct-1",
    *,
    severity: str = "medium",
    key: str | None = None,
    t: int = T0,
    status: str = "open",
    revision: int = 0,
    explanation: dict[str, Any] | None = None,
    subject: Subject | None = None,
    summary: str | None = None,
    detector: str | None = None,
) -> Finding:
    """A finding as a detector would emit it."""
    return make_finding(
        detector=detector or kind, kind=kind, severity=severity, dedup_key=key or f"{account}:{kind}",  # type: ignore[arg-type]
        account_id=account, first_seen_ms=t, last_seen_ms=t, detected_at_ms=t, evidence=[f"ev-{kind}-{t}"],
        summary=summary or f"{kind} on {account}", explanation=explanation or {}, subject=subject,
        status=status, revision=revision,
    )  # fmt: skip


# ------------------------------------------------------------------------------ SMTP
@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    #: Per message: whether the session used TLS, was authenticated, and its recipients.
    sessions: list[dict[str, Any]] = field(default_factory=list)
    controller: Any = None

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, n: int, timeout_s: float = 20) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)


def start_smtp(port: int | None = None, refuse: str | None = None, **controller_options: Any) -> SmtpServer:
    """A real SMTP server (aiosmtpd) on a loopback port, keeping what it receives;
    recipients containing ``refuse`` are rejected with 550."""
    from aiosmtpd.controller import Controller

    server = SmtpServer("127.0.0.1", port or free_port())

    class Handler:
        async def handle_RCPT(self, smtp: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
            if refuse is not None and refuse in address:
                return "550 5.1.1 no such mailbox"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
            msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            server.messages.append(msg)  # type: ignore[arg-type]
            server.sessions.append({"tls": session.ssl is not None, "authenticated": session.authenticated,
                                    "rcpt": list(envelope.rcpt_tos)})  # fmt: skip
            return "250 OK"

    server.controller = Controller(Handler(), hostname=server.host, port=server.port, **controller_options)
    server.controller.start()
    return server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = start_smtp()
    yield server
    server.stop()


# ------------------------------------------------------------------------------ HTTP
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A real HTTP server; ``responses`` (status, headers) are served first, then 200."""

    port: int
    received: list[Received] = field(default_factory=list)
    responses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> HttpReceiver:
        outer = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    status, headers = outer.responses.pop(0) if outer.responses else (200, {})
                    if 200 <= status < 300:
                        outer.received.append(Received(self.path, dict(self.headers.items()), body))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def wait_for(self, n: int, timeout_s: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(free_port()).start()
    yield receiver
    receiver.stop()


# ------------------------------------------------------------------------------ Alertmanager
AM_BINARY = "prometheus-alertmanager"


@dataclass
class Alertmanager:
    port: int
    workdir: Path
    receiver: HttpReceiver
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        cfg = self.workdir / "am.yml"
        cfg.write_text(
            "route:\n  receiver: hook\n  group_by: [finding_id]\n  group_wait: 1s\n  group_interval: 1s\n"
            "  repeat_interval: 1h\n"
            f"receivers:\n  - name: hook\n    webhook_configs:\n      - url: {self.receiver.url}\n"
            "        send_resolved: true\n"
        )
        log = (self.workdir / "am.log").open("ab")
        self.proc = subprocess.Popen(
            [AM_BINARY, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address=", f"--storage.path={self.workdir / 'data'}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"Alertmanager did not start: {(self.workdir / 'am.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """A real Alertmanager on a loopback port, notifying an HTTP receiver (send_resolved)."""
    if shutil.which(AM_BINARY) is None:
        pytest.skip(f"{AM_BINARY} is not installed (apt-get install prometheus-alertmanager; .ci/system-deps does)")
    receiver = HttpReceiver(free_port()).start()
    am = Alertmanager(free_port(), tmp_path / "am", receiver)
    am.workdir.mkdir()
    am.start()
    yield am
    am.stop()
    receiver.stop()


def wait_until(predicate: Callable[[], Any], timeout_s: float = 20, interval_s: float = 0.1) -> bool:
    return _wait_until(predicate, timeout_s, interval_s)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
