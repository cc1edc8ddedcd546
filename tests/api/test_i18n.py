"""Console strings: both catalogues have the same keys and placeholders, every key a
template uses exists, and the locale is negotiated from the cookie and Accept-Language."""

from __future__ import annotations

import re
from pathlib import Path

from secmon.api.i18n import LOCALES, Translator, catalogue, negotiate
from secmon.contract import FINDING_KINDS

TEMPLATES = Path(__file__).resolve().parents[2] / "secmon" / "api" / "templates"


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    en, zh = catalogue("en"), catalogue("zh-CN")
    assert set(en) == set(zh)
    for key in en:
        assert set(re.findall(r"\{(\w+)\}", en[key])) == set(re.findall(r"\{(\w+)\}", zh[key])), key
        assert zh[key].strip(), key


def test_every_key_a_template_uses_exists() -> None:
    """Literal keys exist; keys built from a prefix (``t('status.' ~ s)``) exist for every value."""
    en = catalogue("en")
    literal, prefixes = set(), set()
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text()
        literal |= set(re.findall(r"""\bt\(\s*'([^']+)'\s*[,)]""", text))
        prefixes |= set(re.findall(r"""\bt\(\s*'([^']+\.)'\s*~""", text))
    assert literal and literal - set(en) == set()
    vocab = {
        "status.": ["all", "active", "new", "open", "pending_user", "resolved", "closed"],
        "severity.": ["info", "low", "medium", "high", "critical"],
        "role.": ["support_agent", "security_analyst", "admin"],
        "lang.": list(LOCALES),
        "flash.": ["taken", "commented", "status"],
        "verify.": ["verified", "wrong_code", "replayed", "not_enrolled", "rate_limited", "unavailable"],
        "finding.": ["open", "resolved"],
    }
    assert prefixes == set(vocab)
    assert [f"{p}{v}" for p, values in vocab.items() for v in values if f"{p}{v}" not in en] == []
    assert all(f"vlog.{v}" in en for v in vocab["verify."])


def test_every_finding_kind_and_category_has_a_title_in_both_languages() -> None:
    for locale in LOCALES:
        cat = catalogue(locale)
        assert all(f"kind.{k}" in cat for k in FINDING_KINDS)
        assert all(f"category.{c}" in cat for c in ("login_lockout", "deposit_withdrawal", "account_security",
                                                   "platform_incident"))  # fmt: skip


def test_translation_and_fallbacks() -> None:
    zh = Translator("zh-CN")
    assert zh("sla.due_in", d="2h") == "剩余 2h"
    assert zh.opt("kind", "brute_force") == "暴力破解登录"
    assert zh.opt("kind", "some_new_kind") == "some new kind"  # an open vocabulary: readable, not a crash
    assert Translator("fr")("nav.cases") == "Cases"
    assert zh("no.such.key") == "no.such.key"


def test_negotiation() -> None:
    assert negotiate(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert negotiate(None, "zh-TW") == "zh-CN"
    assert negotiate(None, "de-DE, en;q=0.3, zh;q=0.2") == "en"
    assert negotiate(None, "en;q=0.1, zh;q=0.9") == "zh-CN"
    assert negotiate(None, "zh;q=0, fr") == "en"
    assert negotiate("zh-CN", "en") == "zh-CN"
    assert negotiate("xx", None, default="zh-CN") == "zh-CN"
    assert negotiate(None, "en;q=abc") == "en"
