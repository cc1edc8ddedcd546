"""Running the API: as its own process (``secmon api serve``) or in a thread for the demo."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn

from secmon.api.app import create_app
from secmon.api.settings import parse
from secmon.api.tokens import TokenStore
from secmon.config import Config
from secmon.net import free_port, port_free
from secmon.store.db import open_database

log = logging.getLogger(__name__)
DEMO_TOKEN_NAME = "demo-admin"
DEMO_PORT = 8000


def _uvicorn_config(app: Any, host: str, port: int, forwarded: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=True,
                          forwarded_allow_ips=forwarded, server_header=False, lifespan="off")  # fmt: skip


def serve(config: Config, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted (uvicorn handles SIGINT/SIGTERM)."""
    settings = parse(config.api)
    app = create_app(config)
    h, p = host or settings.host, port or settings.port
    log.info("secmon API and console on http://%s:%d", h, p)
    uvicorn.Server(_uvicorn_config(app, h, p, settings.forwarded_allow_ips)).run()


class BackgroundServer:
    """uvicorn in a daemon thread, on a loopback port (the demo and the browser test)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(_uvicorn_config(app, self.host, self.port, "127.0.0.1"))
        self.thread = threading.Thread(target=self.server.run, name="secmon-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_demo_api(config: Config) -> dict[str, Any]:
    """The demo's console: a background server on 127.0.0.1:8000 (or a free port) and a fresh
    admin token (tokens are stored hashed, so each demo start mints one and revokes the last)."""
    engine = open_database(config.store.url.reveal())
    tokens = TokenStore(engine)
    now = int(time.time() * 1000)
    tokens.revoke_named(DEMO_TOKEN_NAME, actor="secmon-demo", now_ms=now)
    new = tokens.create(name=DEMO_TOKEN_NAME, role="admin", actor="secmon-demo", now_ms=now)
    port = DEMO_PORT if port_free(DEMO_PORT) else 0
    server = BackgroundServer(create_app(config, engine=engine), "127.0.0.1", port).start()

    def stop() -> None:
        server.stop()
        engine.dispose()

    return {"url": server.url, "token": new.token, "stop": stop}
