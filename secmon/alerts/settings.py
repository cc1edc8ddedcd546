"""The ``alerts`` config section: typed, validated, secrets hidden.

``secmon.config`` keeps ``alerts`` as a raw mapping so the core imports nothing from here;
this module turns it into frozen structs (unknown keys are errors) and checks what only the
action layer knows: that the policy file parses, that every template it names exists in
every locale, and that every channel it routes to is configured.  ``secmon check-config``
calls :func:`validate` through ``secmon.sections``.

Durations are integer milliseconds (``*_ms``) like the rest of the config, except the SLA
table, which needs business days: ``"1h"``, ``"4h"``, ``"1bd"``, ``"3bd"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec

from secmon.config import ConfigError, Secret, convert

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
DAY_MS = 86_400_000

Severity = Literal["info", "low", "medium", "high", "critical"]
UserChannel = Literal["email", "push", "kafka"]
FeedFormat = Literal["finding", "ocsf"]


class _Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class CaseSettings(_Base, frozen=True):
    enabled: bool = True
    #: Resolution SLA per priority: ``<n>m``, ``<n>h``, ``<n>d`` or ``<n>bd`` (business days).
    sla: dict[str, str] = msgspec.field(default_factory=lambda: {"P1": "1h", "P2": "4h", "P3": "1bd", "P4": "3bd"})
    #: Business days are counted in this time zone (IANA name), on these weekdays, skipping holidays.
    business_timezone: str = "UTC"
    workdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = msgspec.field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"]  # type: ignore[list-item]
    )
    #: A case opened outside working days starts its business-day clock at this local time.
    business_day_start: str = "09:00"
    holidays: list[str] = []  # ISO dates, e.g. "2026-12-25"
    #: A new finding within this long of a case's resolution reopens it (instead of a new case).
    reopen_window_ms: int = 24 * HOUR_MS
    #: Resolved cases are closed by the periodic sweep after this long.
    auto_close_after_ms: int = 7 * DAY_MS
    #: A breached SLA raises the priority one step (P4 → P3 …) and restarts the clock.
    escalate_on_breach: bool = True


class NotMeSettings(_Base, frozen=True):
    #: The page the wallet serves for "this wasn't me"; the token is appended as ``?t=``.
    base_url: str = "https://wallet.example/security/not-me"
    #: HMAC key for the links.  Empty: messages carry no "this wasn't me" link (warned at start).
    signing_key: Secret = Secret("")
    ttl_ms: int = 7 * DAY_MS


class EmailSettings(_Base, frozen=True):
    host: str = ""
    port: int = 587
    #: Upgrade a plain connection with STARTTLS (port 587); ``ssl`` is implicit TLS (port 465).
    starttls: bool = True
    ssl: bool = False
    #: Verify the server certificate (STARTTLS/SSL) against this CA file, or the system store.
    cafile: str | None = None
    username: str | None = None
    password: Secret = Secret("")
    from_addr: str = "Wallet Security <security@wallet.example>"
    #: The recipient; ``{account}`` is a mail-safe form of the account id.  The wallet's relay
    #: maps the per-account alias to the address verified before ``X-Secmon-Contact-Before``.
    recipient: str = "{account}@accounts.wallet.example"
    message_id_domain: str = "secmon.wallet.example"
    timeout_s: float = 10.0


class PushSettings(_Base, frozen=True):
    """The wallet's SMS/push service: a JSON POST per message with an ``Idempotency-Key``."""

    url: str = ""
    token: Secret = Secret("")  # sent as ``Authorization: Bearer``
    #: Optional HMAC key: requests then carry ``X-Secmon-Signature`` like the feed webhooks.
    secret: Secret = Secret("")
    timeout_s: float = 10.0


class NotificationSettings(_Base, frozen=True):
    enabled: bool = True
    #: Where user messages go (each message to each channel).  ``kafka`` is the
    #: ``kafka.topics.notifications`` topic; ``email`` and ``push`` need their sections.
    channels: list[UserChannel] = msgspec.field(default_factory=lambda: ["kafka"])  # type: ignore[list-item]
    default_locale: str = "en"
    #: A directory of ``<locale>.yaml`` template catalogues replacing the shipped ones.
    templates_dir: str | None = None
    #: Per account and message type: at most ``per_kind_limit`` within ``per_kind_window_ms``.
    per_kind_window_ms: int = 15 * MINUTE_MS
    per_kind_limit: int = 1
    #: Per account: at most ``daily_limit`` messages within 24 h; the rest wait for a digest.
    daily_limit: int = 5
    #: At most one digest per account this often (summarises the held messages).
    digest_interval_ms: int = 6 * HOUR_MS
    #: These severities skip the daily limit (never the per-kind window).
    bypass_daily_limit: list[Severity] = msgspec.field(default_factory=lambda: ["critical"])  # type: ignore[list-item]
    #: Help articles; ``{locale}`` is replaced by the message's locale.
    help_urls: dict[str, str] = msgspec.field(
        default_factory=lambda: {
            "forgotten_password": "https://help.wallet.example/{locale}/forgotten-password",
            "locked_account": "https://help.wallet.example/{locale}/locked-account",
            "delayed_deposit": "https://help.wallet.example/{locale}/delayed-deposit",
            "failed_withdrawal": "https://help.wallet.example/{locale}/failed-withdrawal",
            "enable_2fa": "https://help.wallet.example/{locale}/enable-2fa",
        }
    )
    not_me: NotMeSettings = NotMeSettings()
    email: EmailSettings = EmailSettings()
    push: PushSettings = PushSettings()


class AlertmanagerSettings(_Base, frozen=True):
    #: Base URL, e.g. ``http://alertmanager:9093``; empty: no Alertmanager sink.
    url: str = ""
    min_severity: Severity = "medium"
    #: Active alerts are re-sent this often; each send says ``endsAt = now + 4 × this``
    #: (Prometheus' rule), so Alertmanager resolves them by itself if secmon goes silent.
    resend_interval_ms: int = 60_000
    #: A finding with no new revision for this long is resolved on Alertmanager.
    active_ttl_ms: int = 4 * HOUR_MS
    timeout_s: float = 5.0


class WebhookSettings(_Base, frozen=True):
    name: str
    url: str
    #: HMAC-SHA256 key for ``X-Secmon-Signature``; empty: unsigned (not recommended).
    secret: Secret = Secret("")
    format: FeedFormat = "finding"
    min_severity: Severity = "info"
    timeout_s: float = 5.0


class FeedSettings(_Base, frozen=True):
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    webhooks: list[WebhookSettings] = []


class JobSettings(_Base, frozen=True):
    #: How often the periodic jobs run (SLA sweep, digests, Alertmanager re-sends).
    interval_ms: int = 15_000


class AlertsSettings(_Base, frozen=True):
    #: A policy YAML replacing the shipped ``secmon/alerts/policy.yaml``.
    policy: str | None = None
    #: Base URL of the console; alerts link to ``{console_url}/cases/<id>`` and ``/findings/<id>``.
    console_url: str = "http://127.0.0.1:8080"
    cases: CaseSettings = CaseSettings()
    notifications: NotificationSettings = NotificationSettings()
    feed: FeedSettings = FeedSettings()
    jobs: JobSettings = JobSettings()


def parse(section: dict[str, Any] | None) -> AlertsSettings:
    """The typed ``alerts`` section (defaults for everything absent)."""
    settings: AlertsSettings = convert(section or {}, AlertsSettings, "alerts")
    _check(settings)
    return settings


def _check(s: AlertsSettings) -> None:
    from secmon.alerts.sla import SlaPolicy

    SlaPolicy.from_settings(s.cases)  # raises ConfigError for bad durations/time zone
    n = s.notifications
    if n.per_kind_limit < 1 or n.daily_limit < 1 or n.per_kind_window_ms <= 0 or n.digest_interval_ms <= 0:
        raise ConfigError("alerts.notifications: limits must be >= 1 and windows > 0")
    if "email" in n.channels and not n.email.host:
        raise ConfigError("alerts.notifications.channels has email but alerts.notifications.email.host is empty")
    if "push" in n.channels and not n.push.url:
        raise ConfigError("alerts.notifications.channels has push but alerts.notifications.push.url is empty")
    if n.email.ssl and n.email.starttls:
        raise ConfigError("alerts.notifications.email: choose ssl (implicit TLS) or starttls, not both")
    if "{account}" not in n.email.recipient:
        raise ConfigError("alerts.notifications.email.recipient must contain {account}")
    if n.not_me.ttl_ms <= 0:
        raise ConfigError("alerts.notifications.not_me.ttl_ms must be > 0")
    names = [w.name for w in s.feed.webhooks]
    if len(names) != len(set(names)):
        raise ConfigError(f"alerts.feed.webhooks: duplicate names {sorted(names)}")
    for w in s.feed.webhooks:
        if not w.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"alerts.feed.webhooks: name {w.name!r} must be letters, digits, - or _")
    am = s.feed.alertmanager
    if am.url and (am.resend_interval_ms <= 0 or am.active_ttl_ms <= am.resend_interval_ms):
        raise ConfigError("alerts.feed.alertmanager: resend_interval_ms > 0 and active_ttl_ms > resend_interval_ms")
    if s.policy is not None and not Path(s.policy).is_file():
        raise ConfigError(f"alerts.policy: no such file {s.policy}")


def validate(section: dict[str, Any] | None) -> AlertsSettings:
    """Everything ``secmon run`` would reject about the section, for ``check-config``;
    returns the typed section (``check-config`` prints it with the secrets masked)."""
    from secmon.alerts.policy import load_policy
    from secmon.alerts.render import Renderer

    settings = parse(section)
    check_catalogues(settings, load_policy(settings.policy), Renderer.from_settings(settings.notifications))
    return settings


def check_catalogues(settings: AlertsSettings, policy: Any, renderer: Any) -> None:
    """Every template the policy can send exists in every locale, links to a configured help
    article, and renders (template bugs fail at start-up, not at the first message)."""
    missing = renderer.missing(policy.templates())
    if missing:
        raise ConfigError(f"alerts: templates missing from the catalogues: {missing}")
    unknown = sorted(renderer.help_keys() - set(settings.notifications.help_urls))
    if unknown:
        raise ConfigError(f"alerts.notifications.help_urls lacks {unknown} (used by the templates)")
    renderer.check(SAMPLE_VALUES)


#: Values that exercise every branch of the templates at start-up.
SAMPLE_VALUES: dict[str, Any] = {
    "kind": "brute_force", "severity": "high", "when_ms": 1_790_000_000_000, "case_id": 1, "count": 3,
    "country": "DE", "city": "Berlin", "from_country": "US", "ip": "203.0.113.x", "device": "Firefox on Linux",
    "amount": "1,000.00 USD", "asset": "USDT", "network": "TRON", "tx": "…12345678", "reason": "bank_rejected",
    "owner": "platform", "method": "totp", "methods": "SMS", "breached": True, "delay_minutes": 42,
    "items": [{"name": "brute_force", "count": 2}],
}  # fmt: skip
