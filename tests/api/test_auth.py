"""Who may do what: every endpoint against every role, no token, a bad token, revoked and
expired API tokens, and OIDC bearer JWTs (valid, expired, wrong audience/issuer/key/algorithm)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from secmon.api.routes.docs import route_permissions
from secmon.api.tokens import TokenStore
from tests.api.conftest import AUDIENCE, DAY_MS_TEST, LOCKED, NOW, ROLES, Oidc, World, build_world
from tests.helpers.events import HOUR
from tests.helpers.pg import pg_database

SUPPORT, ANALYST, ADMIN = ROLES
EVERYONE = {SUPPORT, ANALYST, ADMIN}
#: (method, path template, JSON body, roles allowed) — written out by hand, not derived from
#: the code's permission table, so a change there that widens access fails here.
MATRIX: list[tuple[str, str, Any, set[str]]] = [
    ("GET", "/api/v1/cases", None, EVERYONE),
    ("GET", "/api/v1/cases/{case}", None, EVERYONE),
    ("POST", "/api/v1/cases/{case}/assign", {"assignee": "token:someone"}, {SUPPORT, ADMIN}),
    ("POST", "/api/v1/cases/{case}/take", None, {SUPPORT, ADMIN}),
    ("POST", "/api/v1/cases/{case}/comments", {"text": "called the user back"}, EVERYONE),
    ("POST", "/api/v1/cases/{case}/status", {"status": "pending_user"}, {SUPPORT, ADMIN}),
    ("POST", "/api/v1/cases/{case}/priority", {"priority": "P1", "reason": "VIP"}, {ANALYST, ADMIN}),
    ("GET", "/api/v1/findings", None, {ANALYST, ADMIN}),
    ("GET", "/api/v1/findings/stream?after=0:0:0&limit=1", None, {ANALYST, ADMIN}),
    ("GET", "/api/v1/findings/{finding}", None, {ANALYST, ADMIN}),
    ("POST", "/api/v1/verifications", {"account_id": LOCKED, "code": "000000"}, {SUPPORT, ADMIN}),
    ("GET", "/api/v1/me", None, EVERYONE),
    ("GET", "/api/v1/stats", None, EVERYONE),
    ("GET", "/api/v1/audit", None, {ANALYST, ADMIN}),
    ("GET", "/api/v1/tokens", None, {ADMIN}),
    ("POST", "/api/v1/tokens", {"name": "ci-bot", "role": "security_analyst"}, {ADMIN}),
    ("DELETE", "/api/v1/tokens/{token}", None, {ADMIN}),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def matrix_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 oidc: Oidc) -> Iterator[World]:  # fmt: skip
    """One seeded world per store for the whole matrix (the matrix only reads status codes)."""
    tmp: Path = tmp_path_factory.mktemp("matrix")
    if request.param == "sqlite":
        w = build_world(f"sqlite:///{tmp / 'secmon.db'}", tmp, oidc)
        yield w
        w.engine.dispose()
    else:
        with pg_database() as url:
            w = build_world(url, tmp, oidc)
            yield w
            w.engine.dispose()


def _call(w: World, method: str, template: str, body: Any, headers: dict[str, str]) -> int:
    case = w.case_id(LOCKED)
    finding = w.client.get("/api/v1/findings", headers=w.auth(ADMIN)).json()["items"][0]["finding_id"]
    tokens = w.app.state.ctx.tokens
    victim = [t.token_id for t in tokens.list() if t.name == "victim"]
    token = victim[0] if victim else tokens.create(name="victim", role=SUPPORT, actor="test", now_ms=NOW).info.token_id
    path = template.format(case=case, finding=finding, token=token)
    return w.client.request(method, path, json=body, headers=headers).status_code


@pytest.mark.parametrize(("method", "path", "body", "allowed"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_each_role_gets_exactly_what_its_role_allows(matrix_world: World, oidc: Oidc, method: str, path: str,
                                                     body: Any, allowed: set[str]) -> None:  # fmt: skip
    """Allowed roles are never refused (401/403); the others get 403; no or bad credentials 401."""
    w = matrix_world
    for role in ROLES:
        status = _call(w, method, path, body, w.auth(role))
        if role in allowed:
            assert status not in (401, 403), f"{role} refused: {status}"
            assert status < 500
        else:
            assert status == 403, f"{role} got {status}"
    # The same through an OIDC token whose role claim maps to each role.
    for role in ROLES:
        status = _call(w, method, path, body, {"Authorization": f"Bearer {oidc.token(roles=[role])}"})
        if role in allowed:
            assert status not in (401, 403), f"oidc {role} refused: {status}"
        else:
            assert status == 403, f"oidc {role} got {status}"
    bad = {
        "none": {},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "wrong secret": {"Authorization": "Bearer " + w.tokens[ADMIN][:-4] + "AAAA"},
        "basic": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "expired oidc": {"Authorization": f"Bearer {oidc.token(now_ms=NOW - 3 * HOUR, ttl_s=600, roles=[ADMIN])}"},
    }
    for name, headers in bad.items():
        assert _call(w, method, path, body, headers) == 401, name


def test_the_matrix_covers_every_operation_in_the_spec(sqlite_world: World) -> None:
    """A new endpoint must be added to the matrix (and so get an authorisation decision)."""
    spec = sqlite_world.client.get("/openapi.json").json()
    ops = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    covered = {(m, p.split("?")[0].replace("{case}", "{case_id}").replace("{finding}", "{finding_id}")
                .replace("{token}", "{token_id}")) for m, p, _, _ in MATRIX}  # fmt: skip
    public = {("GET", "/not-me"), ("POST", "/not-me")}
    assert ops - public == covered
    perms = route_permissions(sqlite_world.app)
    assert perms[("GET", "/not-me")] is None and perms[("POST", "/not-me")] is None
    assert all(perms[op] is not None for op in covered)


def test_a_401_says_how_to_authenticate_and_never_echoes_the_credential(sqlite_world: World) -> None:
    w = sqlite_world
    secret = "smk_0123456789abcdef_" + "x" * 43
    r = w.client.get("/api/v1/cases", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert secret not in r.text and r.json()["error"] == "unauthorized"


def test_revoked_and_expired_api_tokens_stop_working(sqlite_world: World) -> None:
    w = sqlite_world
    store = TokenStore(w.engine)
    short = store.create(name="temp", role=ANALYST, actor="test", now_ms=NOW - HOUR, expires_ms=NOW + HOUR)
    hdr = {"Authorization": f"Bearer {short.token}"}
    assert w.client.get("/api/v1/me", headers=hdr).status_code == 200
    w.clock.now = NOW + HOUR
    assert w.client.get("/api/v1/me", headers=hdr).status_code == 401
    w.clock.now = NOW
    assert w.client.get("/api/v1/me", headers=w.auth(SUPPORT)).status_code == 200
    support_id = next(t.token_id for t in store.list() if t.role == SUPPORT)
    assert w.client.delete(f"/api/v1/tokens/{support_id}", headers=w.auth(ADMIN)).status_code == 204
    assert w.client.get("/api/v1/me", headers=w.auth(SUPPORT)).status_code == 401


def test_oidc_tokens_need_the_right_signature_issuer_audience_and_a_mapped_role(sqlite_world: World,
                                                                             oidc: Oidc) -> None:  # fmt: skip
    w = sqlite_world

    def status(token: str) -> int:
        return w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code

    good = oidc.token(roles=["security_analyst", "unrelated-group"])
    me = w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {good}"}).json()
    assert me["actor"] == "oidc:carol" and me["roles"] == ["security_analyst"] and me["via"] == "oidc"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert status(oidc.token(key=other_key)) == 401  # signed by someone else
    assert status(oidc.token(aud="another-app")) == 401
    assert status(oidc.token(iss="https://evil.example")) == 401
    assert status(oidc.token(roles=["viewer"])) == 401  # no secmon role
    assert status(oidc.token(now_ms=NOW - 2 * HOUR, ttl_s=60)) == 401  # expired
    hs = jwt.encode({"iss": "x", "aud": AUDIENCE, "sub": "s", "exp": NOW // 1000 + 60, "roles": ["admin"]},
                    "k" * 32, algorithm="HS256")  # fmt: skip
    assert status(hs) == 401  # HMAC is never accepted
    unsigned = jwt.encode({"iss": "x", "aud": AUDIENCE, "sub": "s", "exp": NOW // 1000 + 60, "roles": ["admin"]},
                          None, algorithm="none")  # type: ignore[arg-type]  # fmt: skip
    assert status(unsigned) == 401


def test_without_oidc_configured_a_jwt_is_refused(tmp_path: Path, sqlite_url: str, oidc: Oidc) -> None:
    w = build_world(sqlite_url, tmp_path, None, seed=False)
    r = w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {oidc.token(roles=['admin'])}"})
    assert r.status_code == 401
    w.engine.dispose()


def test_a_cookie_session_needs_the_csrf_token_for_api_writes(sqlite_world: World) -> None:
    """A console session may call the JSON API, but writes must echo X-CSRF-Token."""
    w = sqlite_world
    who = w.app.state.ctx.auth.bearer(w.tokens[SUPPORT])
    cookie, session = w.app.state.ctx.auth.open_session(who)
    w.client.cookies.set("secmon_session", cookie)
    case = w.case_id(LOCKED)
    assert w.client.get(f"/api/v1/cases/{case}").status_code == 200
    r = w.client.post(f"/api/v1/cases/{case}/comments", json={"text": "no csrf"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = w.client.post(f"/api/v1/cases/{case}/comments", json={"text": "with csrf"},
                      headers={"X-CSRF-Token": session.csrf or ""})  # fmt: skip
    assert r.status_code == 201
    w.clock.now = NOW + DAY_MS_TEST  # the session (8 h) has ended
    assert w.client.get(f"/api/v1/cases/{case}").status_code == 401
