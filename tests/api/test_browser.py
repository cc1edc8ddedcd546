"""The console in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright) against the app served by a real uvicorn server on a loopback port.

A support agent logs in, opens the most urgent case, comments, takes it and resolves it; an
analyst watches a finding arrive live on the feed (Server-Sent Events).  No page may break
the Content-Security-Policy.  Screenshots go to ``artifacts/``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secmon.api.serve import BackgroundServer
from tests.api.conftest import REPO_ROOT, Oidc, World, build_world, commit_all, finding

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "artifacts"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium is not installed at /usr/bin/chromium (apt-get install chromium; .ci/system-deps does)",
    ),
]


def wall_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path, oidc: Oidc) -> Iterator[tuple[World, str]]:
    world = build_world(sqlite_url, tmp_path, oidc, clock=wall_ms)
    server = BackgroundServer(world.app).start()
    yield world, server.url
    server.stop()
    world.engine.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield b
        b.close()


def _page(browser: Any, base: str, csp_errors: list[str], locale: str = "en-GB") -> Any:
    context = browser.new_context(base_url=base, locale=locale, viewport={"width": 1360, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    return page


def _login(page: Any, token: str) -> None:
    page.goto("/login")
    page.fill("#token", token)
    page.click("#login")


def test_support_logs_in_comments_on_and_resolves_the_top_case(served: tuple[World, str], browser: Any) -> None:
    world, base = served
    csp: list[str] = []
    page = _page(browser, base, csp)
    _login(page, world.tokens["support_agent"])
    page.wait_for_url("**/cases")
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 3
    assert "due in" in rows.first.locator(".sla").inner_text()
    rows.first.locator("a.case-link").click()
    page.wait_for_url("**/cases/*")
    case_id = int(page.url.rsplit("/", 1)[1])
    assert case_id == world.case_id("acct-100234")  # P2, due first
    assert "25 failed logins for ac…34 from 203.0.113.x in 10 minutes" in page.inner_text(".case-grid")
    page.fill("#comment", "Called the user: the failed logins were not them; password reset sent.")
    page.click("#add-comment")
    page.wait_for_selector("#flash")
    assert "Comment added." in page.inner_text("#flash")
    page.click("#take")
    page.wait_for_selector("#flash")
    assert page.inner_text("#case-assignee") == "token:support_agent-1"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-case.png"), full_page=True)
    page.select_option("#status", "resolved")
    page.fill("#note", "User confirmed; account secured.")
    page.click("#set-status")
    page.wait_for_selector("#flash")
    assert page.inner_text("#case-status") == "resolved"
    page.screenshot(path=str(ARTIFACTS / "console-case-resolved.png"), full_page=True)
    detail = world.app.state.ctx.console.cases.get_case(case_id)
    assert detail.case.status == "resolved"
    mine = [(e.type, e.detail.get("text") or e.detail.get("to")) for e in detail.timeline if e.actor != "secmon"]
    assert mine == [("comment", "Called the user: the failed logins were not them; password reset sent."),
                    ("assigned", "token:support_agent-1"), ("status", "open"), ("status", "resolved")]  # fmt: skip
    assert csp == []
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["secmon_session"]["httpOnly"] and cookies["secmon_session"]["sameSite"] == "Strict"


def test_an_analyst_sees_a_new_finding_arrive_live(served: tuple[World, str], browser: Any) -> None:
    world, base = served
    csp: list[str] = []
    page = _page(browser, base, csp, locale="zh-CN")
    _login(page, world.tokens["security_analyst"])
    page.wait_for_url("**/findings")
    assert page.locator("h1").first.inner_text().startswith("安全发现")
    page.wait_for_selector("#live.on")
    before = page.locator("#feed-rows tr").count()
    new = finding("mfa_bruteforce", "acct-live-1", severity="critical", t=wall_ms(), summary="40 wrong 2FA codes in 5 minutes")
    commit_all(world.config, world.engine, [[new]], wall_ms())
    page.wait_for_selector("#feed-rows tr.new")
    assert page.locator("#feed-rows tr").count() == before + 1
    row = page.locator("#feed-rows tr").first.inner_text()
    assert "40 wrong 2FA codes in 5 minutes" in row and "双重验证暴力破解" in row and "严重" in row  # translated
    page.goto("/dashboard")
    assert page.locator("svg.chart").count() == 2
    page.screenshot(path=str(ARTIFACTS / "console-dashboard-zh.png"), full_page=True)
    assert csp == []

