"""The console pages through the app: log-in (CSRF, cookie flags), pages per role, form
posts with CSRF, languages, security headers."""

from __future__ import annotations

import re

import pyotp
from fastapi.testclient import TestClient

from tests.api.conftest import DELAYED, LOCKED, NOW, TOTP_SECRET, World

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def login(world: World, role: str, client: TestClient | None = None) -> TestClient:
    c = client or world.client
    page = c.get("/login")
    r = c.post("/login", data={"token": world.tokens[role], "csrf": csrf_of(page.text), "next": "/"},
               follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "secmon_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    return c


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m is not None
    return m.group(1)


def test_login_needs_the_form_csrf_and_a_valid_token(sqlite_world: World) -> None:
    w = sqlite_world
    assert w.client.get("/cases", follow_redirects=False).headers["location"] == "/login?next=/cases"
    page = w.client.get("/login")
    token = csrf_of(page.text)
    no_csrf = w.client.post("/login", data={"token": w.tokens["admin"], "csrf": "forged"}, follow_redirects=False)
    assert no_csrf.status_code == 403 and "secmon_session" not in no_csrf.headers.get("set-cookie", "")
    page = w.client.get("/login")
    bad = w.client.post("/login", data={"token": "smk_nope", "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert bad.status_code == 401 and "not valid" in bad.text
    cross = w.client.post("/login", data={"token": w.tokens["admin"], "csrf": token},
                          headers={"Origin": "https://evil.example"}, follow_redirects=False)  # fmt: skip
    assert cross.status_code == 403
    login(w, "support_agent")
    assert w.client.get("/", follow_redirects=False).headers["location"] == "/cases"


def test_open_redirects_are_refused(sqlite_world: World) -> None:
    w = sqlite_world
    page = w.client.get("/login?next=//evil.example/x")
    assert 'value="/"' in page.text
    r = w.client.post("/login", data={"token": w.tokens["admin"], "csrf": csrf_of(page.text),
                                      "next": "https://evil.example"}, follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == "/cases"


def test_support_works_a_case_from_the_console(sqlite_world: World) -> None:
    w = sqlite_world
    login(w, "support_agent")
    queue = w.client.get("/cases")
    assert queue.status_code == 200 and "due in" in queue.text and LOCKED not in queue.text
    assert "ac…34" in queue.text
    case = w.case_id(DELAYED)
    page = w.client.get(f"/cases/{case}")
    assert "A 250.00 USDT deposit has not been credited" in page.text and "delay (ms)" in page.text
    token = csrf_of(page.text)
    assert w.client.post(f"/cases/{case}/take", data={"csrf": "wrong"}).status_code == 403
    r = w.client.post(f"/cases/{case}/take", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{case}?msg=taken"
    w.client.post(f"/cases/{case}/comment", data={"csrf": token, "text": "Spoke to the user <b>hi</b>"})
    r = w.client.post(f"/cases/{case}/status", data={"csrf": token, "status": "resolved", "note": "credited"})
    assert r.status_code == 200 and "Status changed." in r.text
    assert "&lt;b&gt;hi&lt;/b&gt;" in r.text and "<b>hi</b>" not in r.text  # escaped
    detail = w.app.state.ctx.console.cases.get_case(case)
    assert detail.case.status == "resolved" and detail.case.assignee == "token:support_agent-1"
    bad = w.client.post(f"/cases/{case}/status", data={"csrf": token, "status": "pending_user"})
    assert bad.status_code == 409 and "not allowed" in bad.text
    assert w.client.get("/findings").status_code == 403  # support does not see the feed


def test_support_verifies_a_caller_from_the_case_page(sqlite_world: World) -> None:
    w = sqlite_world
    login(w, "support_agent")
    case = w.case_id(LOCKED)
    token = csrf_of(w.client.get(f"/cases/{case}").text)
    r = w.client.post(f"/cases/{case}/verify", data={"csrf": token, "code": pyotp.TOTP(TOTP_SECRET).at(NOW / 1000)})
    assert r.status_code == 200 and "Verified: the caller holds" in r.text
    assert "caller verified with the authenticator code" in r.text  # on the timeline
    again = w.client.post(f"/cases/{case}/verify", data={"csrf": token, "code": "12"})
    assert again.status_code == 422


def test_analysts_see_the_feed_a_finding_and_the_dashboard(sqlite_world: World) -> None:
    w = sqlite_world
    login(w, "security_analyst")
    feed = w.client.get("/findings?min_severity=high")
    assert feed.status_code == 200 and "198.51.100.9 tried 140 accounts" in feed.text
    assert "A 250.00 USDT deposit" not in feed.text  # medium: filtered out
    fid = re.search(r'href="/findings/([0-9a-f]+)"', feed.text).group(1)  # type: ignore[union-attr]
    page = w.client.get(f"/findings/{fid}")
    assert page.status_code == 200 and "Revisions" in page.text
    dash = w.client.get("/dashboard")
    assert dash.status_code == 200 and dash.text.count("<svg") == 2 and "Impossible travel" in dash.text
    case = w.case_id(LOCKED)
    page = w.client.get(f"/cases/{case}")
    assert LOCKED in page.text and 'id="take"' not in page.text and 'id="add-comment"' in page.text


def test_languages_follow_the_switch_and_accept_language(sqlite_world: World) -> None:
    w = sqlite_world
    assert "登录" in w.client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}).text
    assert "Log in" in w.client.get("/login", headers={"Accept-Language": "fr, en;q=0.5"}).text
    login(w, "support_agent")
    r = w.client.get("/lang/zh-CN?next=/cases", follow_redirects=False)
    assert r.headers["location"] == "/cases"
    page = w.client.get("/cases")
    assert "工单队列" in page.text and page.headers["content-language"] == "zh-CN"
    assert w.client.get("/lang/en?next=//evil.example", follow_redirects=False).headers["location"] == "/"


def test_every_page_carries_the_security_headers(sqlite_world: World) -> None:
    w = sqlite_world
    login(w, "admin")
    for path in ("/login", "/cases", "/findings", "/dashboard", "/docs", "/not-me", "/api/v1/me"):
        r = w.client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        assert r.headers["x-content-type-options"] == "nosniff"
        if r.headers["content-type"].startswith("text/html"):
            assert "<script>" not in r.text and " style=" not in r.text and "onclick" not in r.text
    static = w.client.get("/static/console.js")
    assert static.status_code == 200 and static.headers.get("cache-control") != "no-store"
    counted = w.metrics.registry.get_sample_value(
        "secmon_api_requests_total", {"route": "/cases", "method": "GET", "status": "2xx"})  # route template, not path
    assert counted is not None and counted >= 1


def test_logout_ends_the_session(sqlite_world: World) -> None:
    w = sqlite_world
    login(w, "admin")
    token = csrf_of(w.client.get("/cases").text)
    assert w.client.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert w.client.get("/cases", follow_redirects=False).status_code == 303


def test_revoking_the_token_ends_its_console_sessions(sqlite_world: World) -> None:
    w = sqlite_world
    other = TestClient(w.app)
    login(w, "support_agent", other)
    assert other.get("/cases").status_code == 200
    tid = next(t.token_id for t in w.app.state.ctx.tokens.list() if t.role == "support_agent")
    w.app.state.ctx.tokens.revoke(tid, actor="test", now_ms=NOW)
    assert other.get("/cases", follow_redirects=False).status_code == 303
