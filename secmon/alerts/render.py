"""User messages from per-locale template catalogues (``templates/<locale>.yaml``).

Templates are Jinja2 in a ``SandboxedEnvironment``: a catalogue overridden from config
cannot reach Python internals.  Attacker-controlled values (a user agent, a city) are only
ever *values*: they are never compiled as templates, so ``{{ 7*7 }}`` in a user agent stays
text.  The plain-text rendering passes every printed value through
:func:`secmon.alerts.redact.plain` (one line, no control characters or ``<>``, bounded);
the HTML version is built by an autoescaping layout from the rendered paragraphs, so markup
in a value arrives as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import yaml
from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from secmon.alerts.redact import plain
from secmon.config import ConfigError

SHIPPED = Path(__file__).with_name("templates")

_LAYOUT = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;line-height:1.5;color:#222;max-width:560px">
{% for p in paragraphs %}<p>{{ p }}</p>
{% endfor %}{% if help_url %}<p><a href="{{ help_url }}">{{ help_label }}</a></p>
{% endif %}{% if not_me_url %}<p><a href="{{ not_me_url }}">{{ not_me_label }}</a></p>
{% endif %}<p style="color:#777;font-size:12px">{{ footer }}</p>
</body></html>
"""


class Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    subject: str
    body: str
    help: str | None = None


class Common(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    help: str
    not_me: str
    footer: str
    time_format: str
    case: str


@dataclass(frozen=True)
class Rendered:
    """One message in one locale, ready for every channel."""

    template: str
    locale: str
    subject: str
    text: str
    html: str
    help_url: str | None
    not_me_url: str | None


def _finalize(value: Any) -> Any:
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, bool | int | float):
        return value
    return plain(value, 200)


@dataclass
class _Compiled:
    subject: Any
    body: Any
    help: str | None


class Renderer:
    """Renders named messages in a locale; falls back to the default locale's catalogue."""

    def __init__(
        self, catalogues: Mapping[str, Mapping[str, Any]], help_urls: Mapping[str, str], default_locale: str
    ) -> None:
        if default_locale not in catalogues:
            raise ConfigError(f"alerts.notifications.default_locale {default_locale!r} has no catalogue "
                              f"(have {sorted(catalogues)})")  # fmt: skip
        self.default_locale = default_locale
        self.help_urls = dict(help_urls)
        self._text = SandboxedEnvironment(autoescape=False, finalize=_finalize, trim_blocks=True, lstrip_blocks=True)
        self._html = SandboxedEnvironment(autoescape=True)
        self._layout = self._html.from_string(_LAYOUT)
        self._entries: dict[tuple[str, str], _Compiled] = {}
        self._common: dict[str, Common] = {}
        self._reasons: dict[str, dict[str, str]] = {}
        self._titles: dict[str, dict[str, str]] = {}
        for locale, raw in catalogues.items():
            where = f"templates/{locale}.yaml"
            try:
                self._common[locale] = msgspec.convert(raw.get("_common"), Common)
                self._reasons[locale] = msgspec.convert(raw.get("_reasons") or {}, dict[str, str])
                self._titles[locale] = msgspec.convert(raw.get("_titles") or {}, dict[str, str])
                for name, spec in raw.items():
                    if name.startswith("_"):
                        continue
                    e = msgspec.convert(spec, Entry)
                    self._entries[(locale, name)] = _Compiled(
                        self._text.from_string(e.subject), self._text.from_string(e.body), e.help
                    )
            except (msgspec.ValidationError, TemplateError) as exc:
                raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def from_directory(cls, directory: Path, help_urls: Mapping[str, str], default_locale: str) -> Renderer:
        catalogues: dict[str, Any] = {}
        for path in sorted(directory.glob("*.yaml")):
            try:
                catalogues[path.stem] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"{path}: {exc}") from None
        return cls(catalogues, help_urls, default_locale)

    @classmethod
    def from_settings(cls, n: Any) -> Renderer:
        """From ``alerts.notifications`` (its ``templates_dir`` or the shipped catalogues)."""
        directory = Path(n.templates_dir) if n.templates_dir else SHIPPED
        return cls.from_directory(directory, n.help_urls, n.default_locale)

    # -- what exists -------------------------------------------------------------------
    @property
    def locales(self) -> list[str]:
        return sorted(self._common)

    def has(self, name: str, locale: str | None = None) -> bool:
        return (locale or self.default_locale, name) in self._entries

    def pick(self, names: Sequence[str]) -> str | None:
        """The first of ``names`` the default catalogue has (kind-specific before generic)."""
        return next((n for n in names if self.has(n)), None)

    def missing(self, names: Iterable[str]) -> list[str]:
        """``locale:name`` of every wanted template some catalogue lacks."""
        return sorted(f"{loc}:{n}" for n in names for loc in self.locales if (loc, n) not in self._entries)

    def help_keys(self) -> set[str]:
        return {c.help for c in self._entries.values() if c.help}

    def title(self, name: str, locale: str) -> str:
        """A message type's short title for digests (``case_opened.x`` falls back to ``case_opened``)."""
        for candidate in (name, name.split(".")[0]):
            for loc in (locale, self.default_locale):
                title = self._titles.get(loc, {}).get(candidate)
                if title:
                    return title
        return name.replace("_", " ")

    # -- rendering ---------------------------------------------------------------------
    def render(self, name: str, locale: str, values: Mapping[str, Any], *, not_me_url: str | None = None) -> Rendered:
        """Render ``name`` in ``locale`` (or the default locale if that catalogue lacks it)."""
        if (locale, name) not in self._entries:
            locale = self.default_locale
        entry = self._entries[(locale, name)]
        common = self._common[locale]
        ctx = dict(values)
        when_ms = ctx.pop("when_ms", None)
        if isinstance(when_ms, int):
            ctx["when"] = datetime.fromtimestamp(when_ms / 1000, UTC).strftime(common.time_format)
        reason = ctx.get("reason")
        if isinstance(reason, str):
            ctx["reason_text"] = self._reasons[locale].get(reason)
        if "items" in ctx:  # digest lines: one per title
            merged: dict[str, int] = {}
            for item in ctx["items"]:
                title = self.title(item["name"], locale)
                merged[title] = merged.get(title, 0) + int(item["count"])
            ctx["items"] = [{"title": t, "count": n} for t, n in merged.items()]
        subject = plain(entry.subject.render(ctx), 150)
        body = _tidy(entry.body.render(ctx))
        help_url = None
        if entry.help and entry.help in self.help_urls:
            help_url = self.help_urls[entry.help].replace("{locale}", locale)
        lines = [body]
        if help_url:
            lines.append(f"{common.help}: {help_url}")
        if not_me_url:
            lines.append(f"{common.not_me}: {not_me_url}")
        lines.append(common.footer)
        text = "\n\n".join(lines)
        html = self._layout.render(
            lang=locale, subject=subject, paragraphs=[p for p in body.split("\n") if p.strip()],
            help_url=help_url, help_label=common.help, not_me_url=not_me_url, not_me_label=common.not_me,
            footer=common.footer,
        )  # fmt: skip
        return Rendered(name, locale, subject, text, html, help_url, not_me_url)

    def check(self, sample: Mapping[str, Any]) -> None:
        """Render every entry with ``sample`` values: template bugs fail at start-up."""
        for locale, name in self._entries:
            try:
                self.render(name, locale, dict(sample), not_me_url="https://example.invalid/x")
            except Exception as exc:
                raise ConfigError(f"templates/{locale}.yaml: {name}: {type(exc).__name__}: {exc}") from None


def _tidy(text: str) -> str:
    """Strip each line and drop empty runs (templates are indented YAML blocks)."""
    lines = [" ".join(line.split()) if line.strip() else "" for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
