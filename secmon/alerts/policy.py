"""The action policy: what a finding of a given kind and severity causes.

One YAML file (the shipped ``policy.yaml`` unless ``alerts.policy`` names another) maps each
finding kind to rules.  A finding takes the rule with the highest ``min_severity`` that is
not above its own severity; a rule says whether it goes to the security feed sinks
(Alertmanager, webhooks), which support case it opens or joins (category + priority), and
which user message it sends (a template name), if any.  Validated at start-up: unknown kinds,
categories, priorities or keys fail there, not when the first finding arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from secmon.config import ConfigError, convert
from secmon.contract import FINDING_KINDS, SEVERITIES, Finding

DEFAULT_POLICY = Path(__file__).with_name("policy.yaml")

Category = Literal["login_lockout", "deposit_withdrawal", "account_security", "platform_incident"]
Priority = Literal["P1", "P2", "P3", "P4"]
Severity = Literal["info", "low", "medium", "high", "critical"]

#: The support case categories and their display titles.
CATEGORIES: dict[str, str] = {
    "login_lockout": "Login & lockout",
    "deposit_withdrawal": "Deposit & withdrawal",
    "account_security": "Account security",
    "platform_incident": "Platform incident",
}
#: A short title per finding kind (case titles, alert summaries, OCSF ``finding_info.title``).
KIND_TITLES: dict[str, str] = {
    "brute_force": "Brute-force login attempts",
    "account_lockout": "Account locked",
    "repeated_lockout": "Account locked repeatedly",
    "credential_stuffing": "Credential stuffing",
    "password_spraying": "Password spraying",
    "compromise_suspected": "Account compromise suspected",
    "impossible_travel": "Impossible travel",
    "account_takeover": "Account takeover",
    "anomalous_transaction": "Anomalous transaction",
    "deposit_delayed": "Deposit delayed",
    "withdrawal_failures": "Withdrawals failing",
    "withdrawal_outage": "Withdrawal outage",
    "mfa_weak_posture": "Weak 2FA posture",
    "mfa_weak_secret": "Weak TOTP secret",
    "mfa_secret_reuse": "TOTP secret reused across accounts",
    "mfa_bruteforce": "2FA brute force",
    "mfa_disabled_risk": "2FA disabled on a valuable account",
    "weak_password": "Weak password",
}
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def kind_title(kind: str) -> str:
    return KIND_TITLES.get(kind, kind.replace("_", " ").capitalize())


class CaseAction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    category: Category
    priority: Priority


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    min_severity: Severity = "info"
    #: To the security feed sinks (the ``secmon.findings`` topic gets every finding anyway).
    feed: bool = True
    case: CaseAction | None = None
    #: A user message template (see ``templates/<locale>.yaml``), or none.
    notify: str | None = None
    #: Whether the message carries a "this wasn't me" link.
    not_me: bool = False


class CategoryOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: The user is told when a case of this category opens and when it is resolved.
    user_facing: bool = False


class PolicyFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kinds: dict[str, list[Rule]]
    categories: dict[Category, CategoryOptions] = {}


NO_ACTION = Rule(feed=False)


@dataclass(frozen=True)
class Policy:
    """Rules per kind, sorted by ``min_severity`` (highest first)."""

    rules: dict[str, tuple[Rule, ...]]
    user_facing: frozenset[str]

    def match(self, finding: Finding) -> Rule:
        """The rule for a finding (no rule for its kind or severity: no action at all)."""
        rank = _RANK.get(finding.severity, 0)
        for rule in self.rules.get(finding.kind, ()):
            if _RANK[rule.min_severity] <= rank:
                return rule
        return NO_ACTION

    def is_user_facing(self, category: str) -> bool:
        return category in self.user_facing

    def templates(self) -> set[str]:
        """Every template the policy can send (notices plus the case and digest messages)."""
        names = {r.notify for rules in self.rules.values() for r in rules if r.notify}
        return names | {"case_opened", "case_resolved", "digest", "not_me_received"}

    def case_kinds(self) -> dict[str, set[str]]:
        """Category → the kinds that can open a case in it."""
        out: dict[str, set[str]] = {}
        for kind, rules in self.rules.items():
            for r in rules:
                if r.case is not None:
                    out.setdefault(r.case.category, set()).add(kind)
        return out


def parse_policy(data: Any, where: str = "policy") -> Policy:
    doc: PolicyFile = convert(data, PolicyFile, where)
    unknown = sorted(set(doc.kinds) - set(FINDING_KINDS))
    if unknown:
        raise ConfigError(f"{where}: unknown finding kinds {unknown}")
    missing = sorted(set(FINDING_KINDS) - set(doc.kinds))
    if missing:
        raise ConfigError(f"{where}: no rules for kinds {missing} (write `[]` for no action)")
    rules: dict[str, tuple[Rule, ...]] = {}
    for kind, kind_rules in doc.kinds.items():
        levels = [r.min_severity for r in kind_rules]
        if len(levels) != len(set(levels)):
            raise ConfigError(f"{where}: {kind} has two rules with the same min_severity")
        for r in kind_rules:
            if r.not_me and not r.notify:
                raise ConfigError(f"{where}: {kind}: not_me needs a notify template")
        rules[kind] = tuple(sorted(kind_rules, key=lambda r: -_RANK[r.min_severity]))
    user_facing = frozenset(c for c, o in doc.categories.items() if o.user_facing)
    return Policy(rules, user_facing)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file (the shipped default when ``path`` is None)."""
    p = Path(path) if path is not None else DEFAULT_POLICY
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"alerts.policy: cannot read {p}: {exc}") from None
    return parse_policy(data, str(p))
