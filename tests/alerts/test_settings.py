"""The ``alerts`` config section: defaults, validation, and ``secmon check-config``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from secmon.alerts.settings import parse, validate
from secmon.cli import main
from secmon.config import ConfigError


def test_defaults_are_valid_and_sensible() -> None:
    s = parse({})
    validate({})
    assert s.cases.sla == {"P1": "1h", "P2": "4h", "P3": "1bd", "P4": "3bd"}
    n = s.notifications
    assert (n.per_kind_window_ms, n.per_kind_limit, n.daily_limit) == (15 * 60_000, 1, 5)
    assert n.channels == ["kafka"] and n.default_locale == "en" and n.not_me.ttl_ms == 7 * 86_400_000
    assert set(n.help_urls) == {"forgotten_password", "locked_account", "delayed_deposit", "failed_withdrawal",
                                "enable_2fa"}  # fmt: skip
    assert s.feed.alertmanager.url == "" and s.feed.webhooks == []


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"notifications": {"chanels": ["email"]}}, "chanels"),
        ({"notifications": {"channels": ["email"]}}, "email.host"),
        ({"notifications": {"channels": ["push"]}}, "push.url"),
        ({"notifications": {"channels": ["sms"]}}, "channels"),
        ({"notifications": {"email": {"host": "m", "ssl": True, "starttls": True}}}, "not both"),
        ({"notifications": {"email": {"recipient": "fixed@example.com"}}}, "{account}"),
        ({"notifications": {"daily_limit": 0}}, "limits"),
        ({"cases": {"sla": {"P1": "1h"}}}, "P2"),
        ({"feed": {"webhooks": [{"name": "a", "url": "u"}, {"name": "a", "url": "v"}]}}, "duplicate"),
        ({"feed": {"webhooks": [{"name": "a b", "url": "u"}]}}, "name"),
        ({"feed": {"webhooks": [{"name": "a", "url": "u", "format": "cef"}]}}, "format"),
        (
            {"feed": {"alertmanager": {"url": "http://am", "resend_interval_ms": 60000, "active_ttl_ms": 1}}},
            "active_ttl",
        ),
        ({"policy": "/nonexistent/policy.yaml"}, "no such file"),
        ({"notifications": {"default_locale": "de"}}, "default_locale"),
        ({"notifications": {"help_urls": {"enable_2fa": "u"}}}, "help_urls"),
    ],
)
def test_invalid_sections_fail_with_a_clear_message(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        validate(section)


def test_check_config_validates_the_alerts_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``secmon check-config`` runs the validator and hides the secrets."""
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"alerts": {"notifications": {"not_me": {"signing_key": "hunter2hunter2hunter2"},
                                                                  "channels": ["kafka"]}}}))  # fmt: skip
    assert main(["check-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "hunter2" not in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"alerts": {"notifications": {"channels": ["email"]}}}))
    assert main(["check-config", str(bad)]) == 2
    assert "email.host" in capsys.readouterr().err
