"""The action policy: kind × severity → feed, case, user message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from secmon.alerts.policy import DEFAULT_POLICY, KIND_TITLES, NO_ACTION, load_policy, parse_policy
from secmon.alerts.render import Renderer
from secmon.alerts.settings import NotificationSettings
from secmon.config import ConfigError
from secmon.contract import FINDING_KINDS
from tests.alerts.conftest import finding


def test_shipped_policy_covers_every_kind_with_templates_in_both_locales() -> None:
    """Every kind has rules; every message it can send exists in en and zh-CN."""
    policy = load_policy()
    assert set(policy.rules) == set(FINDING_KINDS)
    assert set(KIND_TITLES) == set(FINDING_KINDS)
    renderer = Renderer.from_settings(NotificationSettings())
    assert renderer.locales == ["en", "zh-CN"]
    assert renderer.missing(policy.templates()) == []


def test_rule_with_the_highest_min_severity_not_above_the_finding_applies() -> None:
    policy = load_policy()
    assert policy.match(finding("brute_force", severity="low")).notify is None
    medium = policy.match(finding("brute_force", severity="medium"))
    assert medium.notify == "brute_force" and medium.case is None
    high = policy.match(finding("brute_force", severity="critical"))
    assert high.case is not None and (high.case.category, high.case.priority) == ("login_lockout", "P3")
    assert policy.match(finding("account_takeover", severity="critical")).case.priority == "P1"  # type: ignore[union-attr]


def test_a_severity_below_every_rule_means_no_action() -> None:
    assert load_policy().match(finding("mfa_weak_posture", severity="info")) is NO_ACTION


def test_user_facing_categories() -> None:
    policy = load_policy()
    assert policy.is_user_facing("deposit_withdrawal") and policy.is_user_facing("login_lockout")
    assert not policy.is_user_facing("account_security")


def test_policy_file_override(tmp_path: Path) -> None:
    """An operator's policy replaces the shipped one (here: no message for weak passwords)."""
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    doc["kinds"]["weak_password"] = [{"min_severity": "info", "feed": False}]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    rule = load_policy(path).match(finding("weak_password", severity="medium"))
    assert rule.notify is None and rule.feed is False


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["kinds"].pop("weak_password"), "no rules for kinds"),
        (lambda d: d["kinds"].__setitem__("teleport", []), "unknown finding kinds"),
        (lambda d: d["kinds"]["weak_password"].append({"min_severity": "info"}), "same min_severity"),
        (lambda d: d["kinds"]["brute_force"].__setitem__(0, {"min_severity": "info", "not_me": True}), "not_me"),
        (lambda d: d["kinds"]["deposit_delayed"][0]["case"].__setitem__("category", "billing"), "category"),
        (lambda d: d["kinds"]["deposit_delayed"][0]["case"].__setitem__("priority", "P0"), "priority"),
        (lambda d: d["kinds"]["deposit_delayed"][0].__setitem__("page", True), "page"),
    ],
)
def test_invalid_policies_fail_at_start(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    mutate(doc)
    with pytest.raises(ConfigError, match=message):
        parse_policy(doc)
