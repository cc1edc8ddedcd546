"""Account locales from ``account.snapshot`` events (newest wins, idempotent)."""

from __future__ import annotations

from sqlalchemy import Engine

from secmon.alerts.profiles import AccountDirectory, normalize_locale
from tests.helpers.events import HOUR, T0, decoded, ev


def snapshot(account: str, locale: str, ts: int):  # type: ignore[no-untyped-def]
    return decoded(ev("account.snapshot", account, ts, {"locale": locale}))


def test_normalize_locale_matches_exactly_then_by_language() -> None:
    supported = ["en", "zh-CN"]
    assert normalize_locale("zh-CN", supported, "en") == "zh-CN"
    assert normalize_locale("zh_cn", supported, "en") == "zh-CN"
    assert normalize_locale("zh-Hant-TW", supported, "en") == "zh-CN"
    assert normalize_locale("en-GB", supported, "zh-CN") == "en"
    assert normalize_locale("fr-FR", supported, "en") == "en"
    assert normalize_locale(None, supported, "en") == "en"


def test_newest_snapshot_wins_and_replays_change_nothing(engine: Engine) -> None:
    """A replayed or late older snapshot never overwrites a newer locale."""
    d = AccountDirectory(engine, clock=lambda: T0)
    assert d.observe([snapshot("a", "en", T0), snapshot("a", "zh-CN", T0 + HOUR), snapshot("b", "en", T0)]) == 2
    d.observe([snapshot("a", "en", T0 + 10)])  # an older one arriving late
    d.observe([snapshot("a", "zh-CN", T0 + HOUR)])  # the same batch replayed
    with engine.connect() as conn:
        assert AccountDirectory.locale_tag(conn, "a") == "zh-CN"
        assert AccountDirectory.locale_tag(conn, "b") == "en"
        assert AccountDirectory.locale_tag(conn, "nobody") is None
    d.observe([snapshot("a", "en-US", T0 + 2 * HOUR)])
    with engine.connect() as conn:
        assert AccountDirectory.locale_tag(conn, "a") == "en-US"


def test_a_failing_store_is_logged_not_raised(sqlite_engine: Engine) -> None:
    """The worker's hook must never stop consumption."""
    d = AccountDirectory(sqlite_engine)
    sqlite_engine.dispose()
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE account_profile")
    assert d.observe([snapshot("a", "en", T0)]) == 0
