"""The public "this wasn't me" page: GET only confirms, POST redeems once; one neutral page
for used, expired, invalid and rate-limited; every attempt audited."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import orjson
from sqlalchemy import select

from secmon.alerts.tables import audit_log
from tests.api.conftest import TRAVEL, World, user_messages
from tests.helpers.events import DAY


def _link(world: World) -> str:
    (notice,) = [m for m in user_messages(world.engine) if m["account_id"] == TRAVEL and m.get("not_me_url")]
    url = notice["not_me_url"]
    assert url.startswith("http://console.test/not-me?t=")
    return parse_qs(urlsplit(url).query)["t"][0]


def _body(html: str) -> str:
    return html.split("<main>", 1)[1].split("</main>", 1)[0]


def test_get_only_shows_a_confirmation_and_changes_nothing(world: World) -> None:
    token = _link(world)
    r = world.client.get(f"/not-me?t={token}")
    assert r.status_code == 200 and 'name="t"' in r.text and "This wasn" in r.text
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    (case,) = world.app.state.ctx.console.cases.list_cases(account_id=TRAVEL)
    assert case.priority == "P2"  # not escalated by a link preview


def test_post_redeems_once_and_every_other_outcome_looks_the_same(world: World) -> None:
    token = _link(world)
    r = world.client.post("/not-me", data={"t": token})
    assert r.status_code == 200 and "security team is looking" in r.text
    (case,) = world.app.state.ctx.console.cases.list_cases(account_id=TRAVEL)
    assert case.priority == "P1"
    used = world.client.post("/not-me", data={"t": token})
    invalid = world.client.post("/not-me", data={"t": "forged.token"})
    empty = world.client.post("/not-me", data={})
    world.clock.now += 8 * DAY
    assert used.status_code == invalid.status_code == empty.status_code == 200
    assert _body(used.text) == _body(invalid.text) == _body(empty.text)
    assert "If this link was still valid" in used.text
    with world.engine.connect() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.action.like("not_me.%")).order_by(audit_log.c.id)).all()
    assert [(r.action, r.actor) for r in rows] == [("not_me.redeem", f"user:{TRAVEL}"), ("not_me.refused", "public"),
                                                   ("not_me.refused", "public"), ("not_me.refused", "public")]  # fmt: skip
    assert [orjson.loads(r.detail)["status"] for r in rows[1:]] == ["used", "invalid", "invalid"]
    assert all(token not in r.detail and token not in r.object_id for r in rows)


def test_redemptions_are_rate_limited_per_address_with_the_same_neutral_page(world: World) -> None:
    pages = [world.client.post("/not-me", data={"t": f"bad.{i}"}) for i in range(11)]
    assert [p.status_code for p in pages] == [200] * 10 + [429]
    assert _body(pages[-1].text) == _body(pages[0].text)
    token = _link(world)
    assert world.client.post("/not-me", data={"t": token}).status_code == 429  # still limited: not spent
    world.clock.now += 61_000
    assert "security team is looking" in world.client.post("/not-me", data={"t": token}).text
