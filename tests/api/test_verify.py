"""Caller verification by authenticator code: accepted once, replays refused, rate-limited
per account, audited, and the secret never shows up anywhere."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pyotp
import pytest
from sqlalchemy import select

from secmon.alerts.tables import audit_log, case_event
from secmon.api.tables import verification_attempt
from tests.api.conftest import LOCKED, NOW, TOTP_SECRET, World, build_world
from tests.helpers.events import MINUTE

SUPPORT = "support_agent"


def code_at(ms: int, secret: str = TOTP_SECRET) -> str:
    return pyotp.TOTP(secret).at(ms / 1000)


def verify(world: World, code: str, **target: object) -> tuple[int, dict[str, object]]:
    body = {"code": code, **(target or {"account_id": LOCKED})}
    r = world.client.post("/api/v1/verifications", json=body, headers=world.auth(SUPPORT))
    return r.status_code, r.json()


def test_a_correct_code_is_accepted_once_and_a_replay_is_refused(world: World) -> None:
    code = code_at(NOW)
    status, out = verify(world, code)
    assert status == 200 and out == {"outcome": "verified", "verified": True, "attempts_left": 4,
                                     "retry_after_s": None}  # fmt: skip
    status, out = verify(world, code)
    assert status == 200 and out["outcome"] == "replayed" and not out["verified"]
    world.clock.now = NOW + 30_000  # the next time step: a fresh code works, the old one (still in the window) not
    assert verify(world, code)[1]["outcome"] == "replayed"
    assert verify(world, code_at(world.clock.now))[1]["outcome"] == "verified"


def test_a_code_from_an_earlier_step_is_refused_after_a_later_one_was_accepted(world: World) -> None:
    earlier, later = code_at(NOW - 30_000), code_at(NOW)
    assert verify(world, later)[1]["outcome"] == "verified"
    assert verify(world, earlier)[1]["outcome"] == "replayed"  # RFC 6238 §5.2


def test_wrong_codes_and_drift(world: World) -> None:
    assert verify(world, code_at(NOW + 30_000))[1]["outcome"] == "verified"  # one step of clock drift is fine
    world.clock.now = NOW + 2 * MINUTE
    assert verify(world, code_at(NOW - 5 * MINUTE))[1]["outcome"] == "wrong_code"  # too old
    assert verify(world, "000000" if code_at(world.clock.now) != "000000" else "111111")[1]["outcome"] == "wrong_code"
    status, out = verify(world, "123456", account_id="acct-200777")
    assert status == 200 and out["outcome"] == "not_enrolled"
    assert world.client.post("/api/v1/verifications", json={"code": "12ab56", "account_id": LOCKED},
                             headers=world.auth(SUPPORT)).status_code == 422  # fmt: skip
    assert world.client.post("/api/v1/verifications", json={"code": "123456"},
                             headers=world.auth(SUPPORT)).status_code == 400  # fmt: skip (neither case nor account)


def test_attempts_are_limited_per_account_and_the_window_slides(world: World) -> None:
    for i in range(5):
        status, out = verify(world, "000000" if code_at(NOW) != "000000" else "111111")
        assert status == 200 and out["attempts_left"] == 4 - i
    status, out = verify(world, code_at(NOW))  # even the right code: the limit comes first
    assert status == 429 and out["outcome"] == "rate_limited" and out["retry_after_s"] == 15 * 60 + 1
    other = verify(world, "123456", account_id="acct-300555")
    assert other[0] == 200 and other[1]["outcome"] != "rate_limited"  # per account
    world.clock.now = NOW + 15 * MINUTE + 1
    status, out = verify(world, code_at(world.clock.now))
    assert status == 200 and out["outcome"] == "verified"


def test_every_attempt_is_audited_without_the_code_and_a_case_records_the_outcome(world: World) -> None:
    case = world.case_id(LOCKED)
    code = code_at(NOW)
    assert verify(world, code, case_id=case)[1]["outcome"] == "verified"
    assert verify(world, "999999" if code != "999999" else "888888", account_id=LOCKED)[1]["outcome"] == "wrong_code"
    with world.engine.connect() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.action == "caller.verify").order_by(audit_log.c.id)).all()
        attempts = conn.execute(select(verification_attempt.c.outcome, verification_attempt.c.actor)).all()
        events = conn.execute(select(case_event).where(case_event.c.case_id == case,
                                                       case_event.c.type == "caller_verification")).all()  # fmt: skip
    assert [(r.actor, r.object_type, r.object_id, orjson.loads(r.detail)) for r in rows] == [
        ("token:support_agent-1", "account", LOCKED, {"outcome": "verified", "case_id": case}),
        ("token:support_agent-1", "account", LOCKED, {"outcome": "wrong_code", "case_id": None}),
    ]
    assert [tuple(a) for a in attempts] == [("verified", "token:support_agent-1"), ("wrong_code", "token:support_agent-1")]
    assert len(events) == 1 and orjson.loads(events[0].detail) == {"outcome": "verified"}
    for r in rows:
        assert code not in r.detail and TOTP_SECRET not in r.detail
    page = world.client.get(f"/api/v1/cases/{case}", headers=world.auth(SUPPORT)).json()
    assert page["timeline"][-1]["type"] == "caller_verification"


def test_the_secret_never_appears_in_responses_logs_or_the_store(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for code in (code_at(NOW), code_at(NOW), "000000", "12345"):
        r = world.client.post("/api/v1/verifications", json={"code": code, "account_id": LOCKED},
                              headers=world.auth(SUPPORT))  # fmt: skip
        seen.append(r.text)
    seen.append(world.client.get("/openapi.json").text)
    seen.append(caplog.text)
    with world.engine.connect() as conn:
        seen += [str(r) for r in conn.execute(select(audit_log)).all()]
    blob = "\n".join(seen)
    assert TOTP_SECRET not in blob and TOTP_SECRET.lower() not in blob
    assert TOTP_SECRET not in repr(world.app.state.ctx.verifier.store)


def test_without_a_secret_store_verification_is_unavailable(tmp_path: Path, sqlite_url: str) -> None:
    w = build_world(sqlite_url, tmp_path, None, seed=False)
    w.app.state.ctx.verifier.store = None
    r = w.client.post("/api/v1/verifications", json={"code": "123456", "account_id": LOCKED}, headers=w.auth(SUPPORT))
    assert r.status_code == 503 and r.json()["outcome"] == "unavailable"
    w.engine.dispose()
