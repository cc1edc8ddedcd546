"""API tokens: shown once, stored as a digest, verified in constant time, revocable,
expiring, audited; and the ``secmon api token`` commands."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from secmon.alerts.tables import audit_log
from secmon.api.tables import api_token
from secmon.api.tokens import TokenStore
from secmon.cli import main
from secmon.store.db import open_database
from tests.api.conftest import NOW, World
from tests.helpers.events import HOUR


def test_only_a_digest_is_stored_and_creation_is_audited(db_url: str) -> None:
    engine = open_database(db_url)
    store = TokenStore(engine)
    new = store.create(name="alice", role="support_agent", actor="cli:root", now_ms=NOW)
    token_id, secret = new.token.removeprefix("smk_").split("_", 1)
    assert token_id == new.info.token_id and len(secret) == 43
    with engine.connect() as conn:
        row = conn.execute(select(api_token)).one()
        audit = conn.execute(select(audit_log).where(audit_log.c.action == "api_token.create")).one()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(tuple(row)) and secret not in audit.detail
    assert (audit.actor, audit.object_id) == ("cli:root", token_id)
    assert store.verify(new.token, NOW) is not None
    assert store.verify(new.token[:-1] + ("A" if new.token[-1] != "A" else "B"), NOW) is None
    assert store.verify("smk_ffffffffffffffff_" + secret, NOW) is None
    assert store.revoke(token_id, actor="cli:root", now_ms=NOW) and store.verify(new.token, NOW) is None
    assert not store.revoke("0" * 16, actor="x", now_ms=NOW)
    engine.dispose()


def test_bad_arguments_are_refused(sqlite_url: str) -> None:
    store = TokenStore(open_database(sqlite_url))
    for kwargs in ({"role": "root"}, {"name": " "}, {"expires_ms": NOW - 1}):
        args = {"name": "x", "role": "admin", "actor": "t", "now_ms": NOW} | kwargs
        with pytest.raises(ValueError):
            store.create(**args)  # type: ignore[arg-type]
    soon = store.create(name="x", role="admin", actor="t", now_ms=NOW, expires_ms=NOW + HOUR)
    assert store.verify(soon.token, NOW + HOUR - 1) is not None and store.verify(soon.token, NOW + HOUR) is None


def test_admins_manage_tokens_over_the_api(sqlite_world: World) -> None:
    w = sqlite_world
    r = w.client.post("/api/v1/tokens", json={"name": "bot", "role": "security_analyst", "expires_days": 1},
                      headers=w.auth("admin"))  # fmt: skip
    assert r.status_code == 201
    new = r.json()
    assert new["info"]["expires_ms"] == NOW + 86_400_000
    assert w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {new['token']}"}).json()["actor"] == "token:bot"
    listed = w.client.get("/api/v1/tokens", headers=w.auth("admin")).json()
    assert new["token"].split("_", 2)[2] not in str(listed) and {t["name"] for t in listed} >= {"bot", "admin-1"}
    assert w.client.delete("/api/v1/tokens/0123456789abcdef", headers=w.auth("admin")).status_code == 404
    assert w.client.post("/api/v1/tokens", json={"name": "   ", "role": "admin"}, headers=w.auth("admin")).status_code == 400


def test_the_cli_creates_lists_and_revokes_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "secmon.yaml"
    cfg.write_text(f"store:\n  url: sqlite:///{tmp_path / 'secmon.db'}\n")
    assert main(["api", "token", "create", "--role", "support_agent", "--name", "bob", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    token = next(line.split()[1] for line in out.splitlines() if line.startswith("token:"))
    info = TokenStore(open_database(f"sqlite:///{tmp_path / 'secmon.db'}")).verify(token, NOW)
    assert info is not None and info.role == "support_agent" and info.name == "bob"
    assert main(["api", "token", "list", "--config", str(cfg)]) == 0
    listing = capsys.readouterr().out
    assert info.token_id in listing and "active" in listing and token.split("_", 2)[2] not in listing
    assert main(["api", "token", "revoke", info.token_id, "--config", str(cfg)]) == 0
    assert main(["api", "token", "list", "--config", str(cfg)]) == 0
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["api", "token", "create", "--role", "root", "--name", "x", "--config", str(cfg)])
