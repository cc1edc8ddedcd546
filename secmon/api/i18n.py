"""Console strings in English and Simplified Chinese.

Catalogues are flat YAML files in ``locales/`` (``key: text`` with ``{name}`` placeholders);
both must have the same keys (a test checks, and a missing key falls back to English, then
to the key itself, so a gap is visible but never a crash).  The locale comes from the
``secmon_lang`` cookie (set by the language switch), else ``Accept-Language``, else the
configured default.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

LOCALES = ("en", "zh-CN")
LANG_COOKIE = "secmon_lang"
_DIR = Path(__file__).with_name("locales")


@cache
def catalogue(locale: str) -> dict[str, str]:
    data = yaml.safe_load((_DIR / f"{locale}.yaml").read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


class Translator:
    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else "en"
        self._own = catalogue(self.locale)
        self._en = catalogue("en")

    def __call__(self, key: str, **values: object) -> str:
        text = self._own.get(key) or self._en.get(key) or key
        return text.format(**values) if values else text

    def opt(self, prefix: str, key: str) -> str:
        """A translated label for an open vocabulary (finding kinds, timeline types …)."""
        full = f"{prefix}.{key}"
        text = self._own.get(full) or self._en.get(full)
        return text if text is not None else key.replace("_", " ")


def negotiate(cookie: str | None, accept_language: str | None, default: str = "en") -> str:
    """The best of :data:`LOCALES` for a request."""
    if cookie in LOCALES:
        return cookie  # type: ignore[return-value]
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            ranked.append((-q, i, tag.strip().lower()))
    for _q, _i, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return default
