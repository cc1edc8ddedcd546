"""Fixtures for the API: a migrated store (SQLite and PostgreSQL) filled through the real
action layer, the app with a settable clock, tokens per role, an OIDC signing key and a
TOTP secret store file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from secmon.alerts.wiring import build_effects
from secmon.config import Config, load_config
from secmon.contract import Finding, Subject
from secmon.detectors.base import make_finding
from secmon.metrics import Metrics
from secmon.runtime.commit import BatchCommitter, FeedEffects
from secmon.store.checkpoints import CheckpointStore
from secmon.store.db import open_database
from secmon.store.schema import outbox
from tests.conftest import REPO
from tests.helpers.events import HOUR, MINUTE, T0

REPO_ROOT = REPO
#: Wall-clock "now" of the API tests: Wednesday 2026-11-04 10:00 UTC.
NOW = T0 + 3 * 86_400_000 + 10 * HOUR
NOT_ME_KEY = "api-test-not-me-signing-key-0123456789"
ISSUER = "https://idp.example/realms/wallet"
AUDIENCE = "secmon-console"
#: The caller-verification secret of ``acct-100234`` (base32, 32 chars = 160 bits).
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
ROLES = ("support_agent", "security_analyst", "admin")
DAY_MS_TEST = 86_400_000
LOCKED, DELAYED, TRAVEL = "acct-100234", "acct-200777", "acct-300555"


class Clock:
    """A settable wall clock (ms) shared by the app and the test."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclass
class Oidc:
    key: Any
    kid: str = "test-key-1"

    def jwks(self) -> dict[str, Any]:
        jwk = orjson.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, *, now_ms: int = NOW, ttl_s: int = 3600, roles: Any = ("security_analyst",),
              key: Any = None, **overrides: Any) -> str:  # fmt: skip
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-42", "preferred_username": "carol",
                  "iat": now_ms // 1000, "exp": now_ms // 1000 + ttl_s, "roles": list(roles)}  # fmt: skip
        claims.update(overrides)
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="session")
def oidc() -> Oidc:
    return Oidc(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def write_secret_store(path: Path, secrets: dict[str, str]) -> Path:
    path.write_text(orjson.dumps(secrets).decode())
    os.chmod(path, 0o600)
    return path


def api_config(url: str, secret_store: Path | None, oidc: Oidc | None, **api: Any) -> Config:
    section: dict[str, Any] = {"stream_poll_ms": 50, **api}
    if secret_store is not None:
        section.setdefault("verification", {})["secret_store"] = {"type": "file", "path": str(secret_store)}
    if oidc is not None:
        section["oidc"] = {"issuer": ISSUER, "audience": AUDIENCE, "jwks": oidc.jwks()}
    return load_config(None, {
        "store": {"url": url},
        "alerts": {"notifications": {"not_me": {"signing_key": NOT_ME_KEY, "base_url": "http://console.test/not-me"}}},
        "api": section,
    })  # fmt: skip


def finding(kind: str, account: str | None, *, severity: str = "medium", t: int = T0, key: str | None = None,
            summary: str = "", explanation: dict[str, Any] | None = None, subject: Subject | None = None,
            revision: int = 0, status: str = "open") -> Finding:  # fmt: skip
    """A finding as a detector emits it."""
    return make_finding(
        detector=kind, kind=kind, severity=severity, dedup_key=key or f"{account}:{kind}",  # type: ignore[arg-type]
        account_id=account, first_seen_ms=t - 10 * MINUTE, last_seen_ms=t, detected_at_ms=t,
        evidence=[f"ev-{kind}-{t}-{i}" for i in range(3)], summary=summary or f"{kind} on {account}",
        explanation=explanation or {}, subject=subject, revision=revision, status=status,
    )  # fmt: skip


def seed_findings() -> list[list[Finding]]:
    """Batches of findings as the detectors would emit them (one commit per batch)."""
    return [
        [finding("brute_force", LOCKED, severity="medium", t=T0 + HOUR,
                 summary=f"9 failed logins for {LOCKED} from 203.0.113.7 in 10 minutes",
                 explanation={"failures": 9, "window_ms": 600_000, "threshold": 8, "ip": "203.0.113.7"},
                 subject=Subject(ip="203.0.113.7"))],
        [finding("credential_stuffing", None, severity="high", t=T0 + 2 * HOUR, key="ip:198.51.100.9",
                 summary="198.51.100.9 tried 140 accounts in 5 minutes",
                 explanation={"distinct_accounts": 140, "window_ms": 300_000}, subject=Subject(ip="198.51.100.9")),
         finding("deposit_delayed", DELAYED, severity="medium", t=T0 + 2 * HOUR, key=f"{DELAYED}:dp-7",
                 summary="A 250.00 USDT deposit has not been credited after 45 minutes",
                 explanation={"delay_ms": 2_700_000, "sla_ms": 1_800_000, "amount_usd": 250.0},
                 subject=Subject(tx_id="dp-7"))],
        [finding("brute_force", LOCKED, severity="high", t=T0 + 3 * HOUR, revision=1,
                 summary=f"25 failed logins for {LOCKED} from 203.0.113.7 in 10 minutes",
                 explanation={"failures": 25, "window_ms": 600_000, "threshold": 8, "ip": "203.0.113.7"},
                 subject=Subject(ip="203.0.113.7")),
         finding("account_lockout", LOCKED, severity="high", t=T0 + 3 * HOUR,
                 summary=f"{LOCKED} was locked after 25 failed logins from 203.0.113.7",
                 explanation={"failed_attempts": 25, "lockouts": 1}, subject=Subject(ip="203.0.113.7"))],
        [finding("impossible_travel", TRAVEL, severity="high", t=T0 + 4 * HOUR,
                 summary="Logins from Lisbon and Singapore 40 minutes apart (11,000 km)",
                 explanation={"distance_km": 11_000, "speed_kmh": 16_500, "hours_between": 0.67},
                 subject=Subject(ip="192.0.2.44"))],
    ]  # fmt: skip


def commit_all(config: Config, engine: Engine, batches: list[list[Finding]], start_ms: int) -> list[Finding]:
    """Run findings through the core's batch commit with the real action layer's effects."""
    effects = [FeedEffects(), *build_effects(config, engine, Metrics())]
    committer = BatchCommitter(engine, CheckpointStore(engine, "api-test"), effects)
    new: list[Finding] = []
    for i, batch in enumerate(batches):
        new += committer.commit(batch, [], None, start_ms + i * MINUTE)
    return new


def user_messages(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.payload).where(outbox.c.channel.like("notify.%")).order_by(outbox.c.id))
        return [orjson.loads(r.payload) for r in rows]


@dataclass
class World:
    """A seeded store, the app over it and one API token per role."""

    config: Config
    engine: Engine
    clock: Any  # a Clock in most tests; the wall clock for the real-server tests
    app: FastAPI
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def case_id(self, account: str) -> int:
        (case,) = self.app.state.ctx.console.cases.list_cases(account_id=account, status=None)
        return int(case.id)


def build_world(url: str, tmp: Path, oidc: Oidc | None, seed: bool = True, clock: Any = None,
                **api: Any) -> World:  # fmt: skip
    from secmon.api.app import create_app
    from secmon.api.tokens import TokenStore

    store = write_secret_store(tmp / "totp.json", {LOCKED: TOTP_SECRET, TRAVEL: "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"})
    config = api_config(url, store, oidc, **api)
    engine = open_database(url)
    clock = clock or Clock()
    if seed:
        commit_all(config, engine, seed_findings(), clock() - 30 * MINUTE)
    metrics = Metrics()
    app = create_app(config, engine=engine, clock=clock, metrics=metrics)
    world = World(config, engine, clock, app, TestClient(app), metrics=metrics)
    tokens = TokenStore(engine)
    for role in ROLES:
        world.tokens[role] = tokens.create(name=f"{role}-1", role=role, actor="test", now_ms=clock() - HOUR).token
    return world


@pytest.fixture
def world(db_url: str, tmp_path: Path, oidc: Oidc) -> Iterator[World]:
    """A seeded store on SQLite and PostgreSQL with the app over it."""
    w = build_world(db_url, tmp_path, oidc)
    yield w
    w.client.close()
    w.engine.dispose()


@pytest.fixture
def sqlite_world(sqlite_url: str, tmp_path: Path, oidc: Oidc) -> Iterator[World]:
    """The same on SQLite only (for tests about the API itself, not the store)."""
    w = build_world(sqlite_url, tmp_path, oidc)
    yield w
    w.client.close()
    w.engine.dispose()


