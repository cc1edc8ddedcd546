"""Running the API for real: the demo's background server (with its fresh admin token), the
``secmon api serve`` process, and the live stream over a real HTTP connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from secmon.api.serve import DEMO_TOKEN_NAME, start_demo_api
from secmon.api.tokens import TokenStore
from secmon.config import load_config
from secmon.net import free_port
from secmon.store.db import open_database
from tests.api.conftest import Oidc, build_world, commit_all, finding
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


def wall_ms() -> int:
    return int(time.time() * 1000)


def test_the_demo_api_serves_the_console_with_a_fresh_admin_token(tmp_path: Path) -> None:
    config = load_config(None, {"store": {"url": f"sqlite:///{tmp_path / 'demo.db'}"}})
    first = start_demo_api(config)
    try:
        assert first["url"].startswith("http://127.0.0.1:")
        me = httpx.get(f"{first['url']}/api/v1/me", headers={"Authorization": f"Bearer {first['token']}"})
        assert me.status_code == 200 and me.json()["roles"] == ["admin"]
        assert httpx.get(f"{first['url']}/login").status_code == 200
    finally:
        first["stop"]()
    second = start_demo_api(config)  # a restart mints a new token and revokes the old one
    try:
        old = httpx.get(f"{second['url']}/api/v1/me", headers={"Authorization": f"Bearer {first['token']}"})
        assert old.status_code == 401
        tokens = TokenStore(open_database(config.store.url.reveal())).list()
        assert [t.revoked_ms is None for t in tokens if t.name == DEMO_TOKEN_NAME] == [False, True]
    finally:
        second["stop"]()


def test_secmon_api_serve_runs_as_its_own_process(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "secmon.yaml"
    cfg.write_text(f"store:\n  url: sqlite:///{tmp_path / 'secmon.db'}\napi:\n  host: 127.0.0.1\n  port: {port}\n"
                   "logging:\n  format: text\n")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "secmon.cli", "api", "serve", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})  # fmt: skip
    try:
        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(up, timeout_s=30), proc.stdout.read().decode() if proc.poll() is not None else "not up"  # type: ignore[union-attr]
        spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()
        assert spec["info"]["title"] == "secmon console API"
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").text.count("secmon_api_requests_total") >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.wait(20) in (0, -signal.SIGTERM)
        out = proc.stdout.read().decode()  # type: ignore[union-attr]
        assert "Traceback" not in out, out


def test_the_stream_delivers_over_a_real_connection(sqlite_url: str, tmp_path: Path, oidc: Oidc) -> None:
    from secmon.api.serve import BackgroundServer

    world = build_world(sqlite_url, tmp_path, oidc, clock=wall_ms)
    server = BackgroundServer(world.app).start()
    try:
        with httpx.stream("GET", f"{server.url}/api/v1/findings/stream", headers=world.auth("security_analyst"),
                          timeout=20) as r:  # fmt: skip
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines).startswith("retry:")
            new = finding("weak_password", "acct-w", t=wall_ms(), summary="A breached password was set")
            commit_all(world.config, world.engine, [[new]], wall_ms())
            got = []
            for line in lines:
                if line:
                    got.append(line)
                if line.startswith("data: "):
                    break
        assert got[0].startswith("id: ") and got[1] == "event: finding" and new.finding_id in got[2]
    finally:
        server.stop()
        world.engine.dispose()
