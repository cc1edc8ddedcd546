"""Rendering console pages: one Jinja2 environment per app, translated, autoescaped.

Templates get ``t`` (the translator), the caller, their CSRF token and a few formatters;
the pages use only local static files, so the Content-Security-Policy can forbid inline
script and style.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from secmon.alerts.policy import CATEGORIES
from secmon.alerts.sla import format_duration
from secmon.api.auth import Principal
from secmon.api.i18n import LANG_COOKIE, LOCALES, Translator, negotiate

TEMPLATES = Path(__file__).with_name("templates")


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_duration(ms: int) -> str:
    """``2h 05m``, ``3d 4h``, ``12m`` (sign dropped; the template says overdue or not)."""
    return format_duration(abs(ms))


def make_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.globals.update(fmt_ms=fmt_ms, fmt_duration=fmt_duration, LOCALES=LOCALES, CATEGORIES=CATEGORIES)
    return env


def locale_of(request: Request) -> str:
    default = request.app.state.ctx.settings.default_locale
    return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"), default)


def render(request: Request, template: str, who: Principal | None = None, status: int = 200,
           **values: Any) -> HTMLResponse:  # fmt: skip
    env: Environment = request.app.state.templates
    locale = locale_of(request)
    t = Translator(locale)
    now = request.app.state.ctx.clock()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = env.get_template(template).render(t=t, locale=locale, who=who, csrf=who.csrf if who else None,
                                             now_ms=now, here=path, **values)  # fmt: skip
    return HTMLResponse(html, status_code=status, headers={"Content-Language": locale, "Vary": "Cookie, Accept-Language"})
