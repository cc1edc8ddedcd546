"""User messages: what to tell whom, in which language, and never more than they can bear.

Runs in the batch transaction (after the case writes, so a message can name its case).
For a finding it sends, to the account holder:

* the policy's notice template (at most once per finding), with a signed "this wasn't me"
  link when the rule asks for one;
* otherwise, when a case in a user-facing category opens for them, the case's opening
  message ("we noticed your deposit is delayed and are on it"), and when the detector
  resolves it, the closing one ("it has arrived") — to every account of a platform incident.

Budgets, per account, counted on ``user_notification`` (wall clock): at most
``per_kind_limit`` messages of one template per ``per_kind_window_ms``, and ``daily_limit``
per 24 h (``critical`` skips the daily limit).  A message over budget is *held*; the digest
job later sends one summary of the held ones, at most once per ``digest_interval_ms``.

A message is rendered once, here, and its rendering is what the outbox keeps: every
channel (``notify.email``, ``notify.push``, ``notify.kafka``) delivers the same text, with
the outbox dedup key as Message-ID / Idempotency-Key / Kafka header.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, bindparam, case, func, select, update

from secmon.alerts.cases import CaseChange
from secmon.alerts.not_me import NotMeLinks
from secmon.alerts.policy import Policy, Rule
from secmon.alerts.profiles import AccountDirectory, normalize_locale
from secmon.alerts.redact import device_label, mask_ip
from secmon.alerts.render import Renderer
from secmon.alerts.settings import NotificationSettings
from secmon.alerts.tables import DEDUP_KEY_LEN, case_finding, support_case, user_notification
from secmon.clock import wall_ms
from secmon.contract import Finding, iso_ms, parse_ts_ms
from secmon.metrics import Metrics
from secmon.store.db import insert_ignore
from secmon.store.fastexec import run
from secmon.store.outbox import OutboxMessage, enqueue

log = logging.getLogger(__name__)
CHANNEL_PREFIX = "notify."
DAY_MS = 86_400_000
_COUNT_KEYS = ("failures", "failed_challenges", "lockouts", "failed_attempts", "attempts")


_n = user_notification.c
# Statements of the per-finding path, built once: building one costs more than running it.
#: Messages sent to an account: of one template within the per-kind window, and in all within
#: the day (one statement for both budgets; ``since`` is the earlier of the two starts).
_SENT_COUNTS = (
    select(
        func.coalesce(func.sum(case(
            (and_(_n.template == bindparam("template"), _n.created_ms > bindparam("since_kind")), 1), else_=0)), 0),
        func.coalesce(func.sum(case((_n.created_ms > bindparam("since_day"), 1), else_=0)), 0),
    )
    .select_from(user_notification)
    .where(_n.account_id == bindparam("account_id"), _n.status == "sent", _n.created_ms > bindparam("since"))
)  # fmt: skip
_DECIDED = select(_n.id).where(_n.dedup_key == bindparam("dedup_key")).limit(1)
_LATEST_CASE_OF_FINDING = (
    select(case_finding.c.case_id)
    .join(support_case, support_case.c.id == case_finding.c.case_id)
    .where(case_finding.c.finding_id == bindparam("finding_id"))
    .order_by(support_case.c.opened_ms.desc())
    .limit(1)
)


def channel_name(channel: str) -> str:
    """Outbox channel of a user channel (``email`` → ``notify.email``)."""
    return CHANNEL_PREFIX + channel


def message_values(f: Finding) -> dict[str, Any]:
    """What a template may show about a finding: a fixed set of facts, masked and short.

    Nothing else of the finding reaches a message (no raw explanation, no full IP)."""
    e = f.explanation
    s = f.subject
    to: dict[str, Any] = e["to"] if isinstance(e.get("to"), dict) else {}
    frm: dict[str, Any] = e["from"] if isinstance(e.get("from"), dict) else {}
    values: dict[str, Any] = {
        "kind": f.kind,
        "severity": f.severity,
        "when_ms": parse_ts_ms(f.detected_at),
        "country": to.get("country") or e.get("country"),
        "city": to.get("city") or e.get("city"),
        "from_country": frm.get("country"),
        "ip": mask_ip(s.ip) or _masked(e.get("ip")),
        "device": device_label(_str(e.get("user_agent")) or _str(e.get("device"))),
        "asset": _str(e.get("asset")),
        "network": s.network or _str(e.get("network")),
        "tx": f"…{s.tx_id[-8:]}" if s.tx_id and len(s.tx_id) > 8 else s.tx_id,
        "reason": s.reason or _str(e.get("reason")),
        "owner": _str(e.get("owner")),
        "method": _str(e.get("method")),
        "breached": e.get("breached") is True,
    }
    count = next((e[k] for k in _COUNT_KEYS if isinstance(e.get(k), int) and not isinstance(e.get(k), bool)), None)
    if count is not None:
        values["count"] = count
    usd = e.get("amount_usd")
    if isinstance(usd, int | float) and not isinstance(usd, bool) and usd > 0:
        values["amount"] = f"{usd:,.2f} USD"
    methods = e.get("mfa_methods")
    if isinstance(methods, list) and methods:
        values["methods"] = ", ".join(str(m).upper() if m == "sms" else str(m) for m in methods)
    delay = e.get("delay_ms")
    if isinstance(delay, int) and delay > 0:
        values["delay_minutes"] = delay // 60_000
    return {k: v for k, v in values.items() if v not in (None, "")}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _masked(v: Any) -> str | None:
    """An IP a detector already masked (``203.0.113.x``), never a full one."""
    if isinstance(v, str) and (v.endswith(".x") or v.endswith("…")) and mask_ip(v) is None:
        return v
    return None


class Notifier:
    """Decides, renders and enqueues user messages (see the module docstring)."""

    def __init__(
        self,
        settings: NotificationSettings,
        policy: Policy,
        renderer: Renderer,
        links: NotMeLinks | None,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.renderer = renderer
        self.links = links
        self.metrics = metrics
        self.clock = clock
        self.channels = [channel_name(c) for c in dict.fromkeys(settings.channels)]
        self.bypass = frozenset(settings.bypass_daily_limit)

    # -- from findings -----------------------------------------------------------------
    def on_finding(self, conn: Connection, f: Finding, rule: Rule, changes: Sequence[CaseChange], now_ms: int) -> int:
        """Messages for one new finding revision and what it did to cases; returns how many were sent."""
        if not self.settings.enabled:
            return 0
        sent = 0
        values = message_values(f)
        for ch in changes:
            if not self.policy.is_user_facing(ch.category):
                continue
            if ch.opened and ch.account_id is not None and not rule.notify:
                sent += self.send(conn, account_id=ch.account_id, names=(f"case_opened.{f.kind}", "case_opened"),
                                  values=values, dedup_key=f"case:{ch.case_id}:opened:{f.finding_id}",
                                  finding=f, case_id=ch.case_id, now_ms=now_ms)  # fmt: skip
            elif ch.joined_incident and ch.account_id is not None:
                sent += self.send(conn, account_id=ch.account_id, names=("case_opened.withdrawal_outage", "case_opened"),
                                  values=values, dedup_key=f"case:{ch.case_id}:member:{ch.account_id}",
                                  finding=f, case_id=ch.case_id, now_ms=now_ms)  # fmt: skip
            if ch.resolved:
                accounts = ch.members or ((ch.account_id,) if ch.account_id is not None else ())
                for account in accounts:
                    sent += self.send(conn, account_id=account, names=(f"case_resolved.{f.kind}", "case_resolved"),
                                      values=values, dedup_key=f"case:{ch.case_id}:resolved:{account}:{f.finding_id}",
                                      finding=f, case_id=ch.case_id, now_ms=now_ms)  # fmt: skip
        if rule.notify and f.account_id is not None and f.status != "resolved":
            dedup_key = f"notice:{f.finding_id}:{rule.notify}"
            # One notice per finding: a later revision (more evidence, a higher severity) finds
            # it decided, in one lookup instead of the case, locale and budget queries first.
            if f.revision == 0 or not self._decided(conn, dedup_key):
                case_id = self._case_of(conn, f.finding_id)
                sent += self.send(conn, account_id=f.account_id, names=(rule.notify,), values=values,
                                  dedup_key=dedup_key, finding=f, case_id=case_id, not_me=rule.not_me,
                                  now_ms=now_ms)  # fmt: skip
        return sent

    def acknowledge_not_me(self, conn: Connection, account_id: str, case_id: int, token_id: str, now_ms: int) -> int:
        """Tell the user their report arrived (a reply to them: no budget applies)."""
        return self.send(
            conn,
            account_id=account_id,
            names=("not_me_received",),
            values={"when_ms": now_ms},
            dedup_key=f"not_me:{token_id}:ack",
            case_id=case_id,
            now_ms=now_ms,
            budget=False,
        )

    # -- one message -------------------------------------------------------------------
    def send(
        self,
        conn: Connection,
        *,
        account_id: str,
        names: Sequence[str],
        values: dict[str, Any],
        dedup_key: str,
        now_ms: int,
        finding: Finding | None = None,
        case_id: int | None = None,
        not_me: bool = False,
        budget: bool = True,
    ) -> int:
        """Render and enqueue one message (or hold it for the digest); 1 if enqueued now."""
        template = self.renderer.pick(names)
        if template is None:
            log.error("no template among %s; message %s not sent", list(names), dedup_key)
            return 0
        locale = normalize_locale(AccountDirectory.locale_tag(conn, account_id), self.renderer.locales,
                                  self.settings.default_locale)  # fmt: skip
        severity = finding.severity if finding is not None else None
        held = budget and self._over_budget(conn, account_id, template, severity, now_ms)
        row = {
            "dedup_key": dedup_key[:DEDUP_KEY_LEN], "account_id": account_id, "template": template,
            "kind": finding.kind if finding is not None else None, "severity": severity, "case_id": case_id,
            "finding_id": finding.finding_id if finding is not None else None, "locale": locale,
            "status": "held" if held else "sent", "created_ms": now_ms, "digest_key": None,
        }  # fmt: skip
        if not insert_ignore(conn, user_notification, [row], returning=(user_notification.c.id,)):
            return 0  # this message was already decided (a replayed batch)
        if held:
            self._count("held")
            return 0
        not_me_url = None
        if not_me and self.links is not None:
            not_me_url = self.links.issue(
                conn, dedup_key=dedup_key, account_id=account_id, case_id=case_id,
                finding_id=finding.finding_id if finding is not None else None,
                kind=finding.kind if finding is not None else None, now_ms=now_ms,
            )  # fmt: skip
        ctx = {**values, "case_id": case_id}
        try:
            msg = self.renderer.render(template, locale, ctx, not_me_url=not_me_url)
        except Exception:  # a template bug must not stall the pipeline; check-config catches most
            log.exception("rendering %s (%s) failed; message %s not sent", template, locale, dedup_key)
            self._count("render_error")
            return 0
        contact_before = finding.first_seen if (finding is not None and not_me) else None
        self._enqueue(conn, account_id, dedup_key, msg, finding, case_id, contact_before, now_ms)
        return 1

    def _enqueue(
        self, conn: Connection, account_id: str, dedup_key: str, msg: Any, finding: Finding | None,
        case_id: int | None, contact_before: str | None, now_ms: int,
    ) -> None:  # fmt: skip
        envelope = {
            "notification_id": hashlib.blake2b(dedup_key.encode(), digest_size=16).hexdigest(),
            "account_id": account_id, "locale": msg.locale, "template": msg.template,
            "kind": finding.kind if finding is not None else None,
            "severity": finding.severity if finding is not None else None,
            "case_id": case_id, "subject": msg.subject, "text": msg.text,
            "help_url": msg.help_url, "not_me_url": msg.not_me_url,
            # Deliver to the contact details verified before this time (an attacker who
            # changed the e-mail address or phone number during the episode must not get it).
            "contact_verified_before": contact_before, "created_at": iso_ms(now_ms),
        }  # fmt: skip
        messages = []
        for channel in self.channels:
            body = {**envelope, "html": msg.html} if channel == channel_name("email") else envelope
            messages.append(OutboxMessage(channel, dedup_key[:DEDUP_KEY_LEN], orjson.dumps(body), account_id.encode()))
            self._count("queued", channel)
        enqueue(conn, messages, now_ms)

    def _over_budget(self, conn: Connection, account_id: str, template: str, severity: str | None, now_ms: int) -> bool:
        s = self.settings
        since_kind, since_day = now_ms - s.per_kind_window_ms, now_ms - DAY_MS
        same, today = run(conn, _SENT_COUNTS, {
            "account_id": account_id, "template": template, "since_kind": since_kind, "since_day": since_day,
            "since": min(since_kind, since_day),
        }).one()  # fmt: skip
        if same >= s.per_kind_limit:
            return True
        if severity in self.bypass:
            return False
        return bool(today >= s.daily_limit)

    @staticmethod
    def _decided(conn: Connection, dedup_key: str) -> bool:
        """Whether the message ``dedup_key`` was sent or held already (rows stay decided)."""
        return run(conn, _DECIDED, {"dedup_key": dedup_key[:DEDUP_KEY_LEN]}).first() is not None

    @staticmethod
    def _case_of(conn: Connection, finding_id: str) -> int | None:
        return run(conn, _LATEST_CASE_OF_FINDING, {"finding_id": finding_id}).scalar_one_or_none()

    def _count(self, outcome: str, channel: str = "all") -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(channel, outcome).inc()

    # -- digests (periodic) ------------------------------------------------------------
    def flush_digests(self, engine: Engine, now_ms: int | None = None, max_accounts: int = 500) -> int:
        """Send one digest per account with held messages, once they have waited a budget
        window and no digest went out within ``digest_interval_ms``; returns digests sent."""
        if not self.settings.enabled:
            return 0
        now = self.clock() if now_ms is None else now_ms
        n = user_notification.c
        s = self.settings
        sent = 0
        with engine.begin() as conn:
            accounts = [r[0] for r in conn.execute(
                select(n.account_id).where(n.status == "held").group_by(n.account_id)
                .having(func.min(n.created_ms) <= now - s.per_kind_window_ms).limit(max_accounts))]  # fmt: skip
            for account in accounts:
                last = conn.execute(select(func.max(n.created_ms))
                                    .where(n.account_id == account, n.status == "digest")).scalar()  # fmt: skip
                if last is not None and last > now - s.digest_interval_ms:
                    continue
                key = f"digest:{account}:{now}"
                held = conn.execute(
                    update(user_notification).where(n.account_id == account, n.status == "held")
                    .values(status="digested", digest_key=key).returning(n.template)
                ).all()  # fmt: skip
                if not held:
                    continue
                counts: dict[str, int] = {}
                for (template,) in held:
                    counts[template] = counts.get(template, 0) + 1
                items = [{"name": k, "count": v} for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
                locale = normalize_locale(AccountDirectory.locale_tag(conn, account), self.renderer.locales,
                                          s.default_locale)  # fmt: skip
                row = {"dedup_key": key, "account_id": account, "template": "digest", "kind": None, "severity": None,
                       "case_id": None, "finding_id": None, "locale": locale, "status": "digest", "created_ms": now,
                       "digest_key": key}  # fmt: skip
                if not insert_ignore(conn, user_notification, [row], returning=(n.id,)):
                    continue
                msg = self.renderer.render("digest", locale, {"items": items, "when_ms": now})
                self._enqueue(conn, account, key, msg, None, None, None, now)
                self._count("digest")
                sent += 1
        return sent
