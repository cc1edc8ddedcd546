"""User message rendering: both locales, sandboxed, attacker-controlled values stay inert."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from secmon.alerts.render import SHIPPED, Renderer
from secmon.alerts.settings import SAMPLE_VALUES, NotificationSettings
from secmon.config import ConfigError

INJECTION = '<script>alert("x")</script>{{ 7*7 }}{% raw %}{{ cycler.__init__.__globals__ }}{% endraw %} & "q"'


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer.from_settings(NotificationSettings())


def test_every_template_renders_in_both_locales(renderer: Renderer) -> None:
    """Start-up check: each entry renders with sample values, with a help link where declared."""
    renderer.check(SAMPLE_VALUES)
    en = renderer.render("case_opened.deposit_delayed", "en", {**SAMPLE_VALUES, "case_id": 7})
    zh = renderer.render("case_opened.deposit_delayed", "zh-CN", {**SAMPLE_VALUES, "case_id": 7})
    assert en.subject == "Your deposit is taking longer than usual"
    assert zh.subject == "您的充值到账时间比平时长"
    assert "1,000.00 USD" in en.text and "TRON" in zh.text and "7" in zh.text
    assert en.help_url == "https://help.wallet.example/en/delayed-deposit"
    assert zh.help_url == "https://help.wallet.example/zh-CN/delayed-deposit"
    assert "2026年" in renderer.render("brute_force", "zh-CN", SAMPLE_VALUES).text


def test_unknown_locale_falls_back_to_the_default(renderer: Renderer) -> None:
    assert renderer.render("weak_password", "fr", SAMPLE_VALUES).locale == "en"


def test_not_me_link_and_help_link_in_text_and_html(renderer: Renderer) -> None:
    msg = renderer.render("impossible_travel", "en", SAMPLE_VALUES, not_me_url="https://w.example/nm?t=a.b")
    assert "This wasn't me: https://w.example/nm?t=a.b" in msg.text
    assert '<a href="https://w.example/nm?t=a.b">' in msg.html
    assert "https://help.wallet.example/en/forgotten-password" in msg.html


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_markup_and_jinja_in_attacker_controlled_fields_arrive_escaped_and_unevaluated(
    renderer: Renderer, locale: str
) -> None:
    """A user agent / city carrying HTML and Jinja is shown as inert text in every rendering."""
    values = {**SAMPLE_VALUES, "device": INJECTION, "city": INJECTION}
    msg = renderer.render("impossible_travel", locale, values)
    for out in (msg.subject, msg.text, msg.html):
        assert "<script" not in out
        assert "49" not in out  # {{ 7*7 }} was not evaluated
        assert "<function" not in out and "<module" not in out
    assert "{{ 7*7 }}" in msg.text and "{% raw %}" in msg.text  # kept as the literal text it was
    assert "&amp;" in msg.html and "&#34;q&#34;" in msg.html  # the HTML is autoescaped
    assert "\n" not in msg.subject


def test_a_catalogue_cannot_escape_the_sandbox(tmp_path: Path) -> None:
    """An operator-supplied template reaching for Python internals fails the start-up check."""
    doc = yaml.safe_load((SHIPPED / "en.yaml").read_text())
    doc["weak_password"]["body"] = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    (tmp_path / "en.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    r = Renderer.from_directory(tmp_path, NotificationSettings().help_urls, "en")
    with pytest.raises(ConfigError, match="weak_password"):
        r.check(SAMPLE_VALUES)


def test_broken_or_missing_catalogue_entries_are_reported(tmp_path: Path) -> None:
    doc = yaml.safe_load((SHIPPED / "en.yaml").read_text())
    doc["weak_password"]["body"] = "{% if %}"
    (tmp_path / "en.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(ConfigError, match=r"en\.yaml"):
        Renderer.from_directory(tmp_path, {}, "en")
    del doc["weak_password"]
    (tmp_path / "en.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    r = Renderer.from_directory(tmp_path, {}, "en")
    assert r.missing(["weak_password", "digest"]) == ["en:weak_password"]
    with pytest.raises(ConfigError, match="default_locale"):
        Renderer.from_directory(tmp_path, {}, "de")


def test_digest_lists_titles_in_the_users_language(renderer: Renderer) -> None:
    items = [{"name": "brute_force", "count": 3}, {"name": "case_opened.deposit_delayed", "count": 1},
             {"name": "case_opened.account_lockout", "count": 2}]  # fmt: skip
    zh = renderer.render("digest", "zh-CN", {"items": items})
    assert "登录失败：3" in zh.text and "已创建客服工单：3" in zh.text
