"""How the action layer plugs into the service: batch effects, sinks, jobs, and the console API.

Everything is built from the ``alerts`` config section (:mod:`secmon.alerts.settings`):

* :func:`build_effects` — cases, user messages and feed rows, in the batch transaction;
* :func:`build_sinks` — one sink per outbox channel the effects write
  (``notify.kafka``/``notify.email``/``notify.push``, ``alertmanager``, ``webhook.<name>``);
* :func:`build_jobs` — the periodic jobs (SLA sweep, digests, Alertmanager re-sends);
* :func:`build_snapshot_hook` — remembers account locales from ``account.snapshot`` events;
* :func:`build_console` — the API the console/HTTP layer uses (cases, "this wasn't me").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import Engine

from secmon.alerts.cases import CaseService, CaseStore
from secmon.alerts.effects import ActionEffects
from secmon.alerts.feed import ALERTMANAGER_CHANNEL, AlertmanagerResender, FeedRouter
from secmon.alerts.jobs import Job
from secmon.alerts.not_me import NotMeLinks, NotMeService
from secmon.alerts.notify import Notifier, channel_name
from secmon.alerts.policy import DEFAULT_POLICY, Policy, load_policy
from secmon.alerts.profiles import AccountDirectory
from secmon.alerts.render import Renderer
from secmon.alerts.settings import AlertsSettings, check_catalogues, parse
from secmon.alerts.sinks.alertmanager import AlertmanagerSink
from secmon.alerts.sinks.base import Sink
from secmon.alerts.sinks.counting import CountingSink
from secmon.alerts.sinks.kafka_topic import KafkaTopicSink
from secmon.alerts.sinks.smtp import SmtpSink
from secmon.alerts.sinks.webhook import WebhookSink
from secmon.alerts.sla import SlaPolicy
from secmon.clock import wall_ms
from secmon.config import Config
from secmon.metrics import Metrics
from secmon.runtime.commit import Effects

log = logging.getLogger(__name__)


@dataclass
class ActionLayer:
    """The action layer's parts, built once from config and shared."""

    settings: AlertsSettings
    policy: Policy
    renderer: Renderer
    cases: CaseStore
    case_service: CaseService
    feed: FeedRouter
    notifier: Notifier
    links: NotMeLinks | None
    not_me: NotMeService | None
    directory: AccountDirectory

    def effects(self) -> ActionEffects:
        s = self.settings
        return ActionEffects(
            self.policy,
            self.cases if s.cases.enabled else None,
            self.notifier if s.notifications.enabled else None,
            self.feed,
        )

    def jobs(self, db: Engine) -> list[Job]:
        jobs = []
        if self.settings.cases.enabled:
            jobs.append(Job("sla_sweep", lambda now: _swept(self.case_service.sweep(now))))
        if self.settings.notifications.enabled:
            jobs.append(Job("digests", lambda now: self.notifier.flush_digests(db, now)))
        am = self.settings.feed.alertmanager
        if am.url:
            jobs.append(Job("alertmanager_resend", AlertmanagerResender(db, am).run))
        return jobs


def _swept(result: Any) -> int:
    return len(result.breached) + len(result.closed)


def build_action_layer(
    config: Config, db: Engine, metrics: Metrics | None = None, *, clock: Callable[[], int] = wall_ms
) -> ActionLayer:
    settings = parse(config.alerts)
    policy = load_policy(settings.policy)
    renderer = Renderer.from_settings(settings.notifications)
    check_catalogues(settings, policy, renderer)
    store = CaseStore(SlaPolicy.from_settings(settings.cases), settings.cases, metrics)
    feed = FeedRouter(settings.feed, settings.console_url)
    nm = settings.notifications.not_me
    links = NotMeLinks(nm.signing_key.reveal().encode(), nm.base_url, nm.ttl_ms) if nm.signing_key else None
    notifier = Notifier(settings.notifications, policy, renderer, links, metrics, clock=clock)
    not_me = NotMeService(db, links, store, feed, notifier, metrics, clock=clock) if links is not None else None
    return ActionLayer(
        settings=settings, policy=policy, renderer=renderer, cases=store,
        case_service=CaseService(db, store, clock=clock), feed=feed, notifier=notifier, links=links,
        not_me=not_me, directory=AccountDirectory(db, clock=clock),
    )  # fmt: skip


def build_effects(config: Config, db: Engine, metrics: Metrics) -> list[Effects]:
    layer = build_action_layer(config, db, metrics)
    n = layer.settings.notifications
    if n.enabled and layer.links is None:
        log.warning("alerts.notifications.not_me.signing_key is empty: messages carry no 'this wasn't me' link")
    return [layer.effects()]


def build_sinks(
    config: Config,
    producer: KafkaProducer,
    consumer_factory: Callable[[], KafkaConsumer],
    metrics: Metrics,
) -> dict[str, Sink]:
    settings = parse(config.alerts)
    sinks: dict[str, Sink] = {}
    n = settings.notifications
    if n.enabled:
        for channel in dict.fromkeys(n.channels):
            name = channel_name(channel)
            inner: Sink
            if channel == "kafka":
                inner = KafkaTopicSink(name, config.kafka.topics.notifications, producer, consumer_factory)
            elif channel == "email":
                inner = SmtpSink(name, n.email)
            else:
                inner = WebhookSink(name, n.push.url, secret=n.push.secret.reveal(), bearer=n.push.token.reveal(),
                                    timeout_s=n.push.timeout_s)  # fmt: skip
            sinks[name] = CountingSink(inner, metrics)
    am = settings.feed.alertmanager
    if am.url:
        sinks[ALERTMANAGER_CHANNEL] = AlertmanagerSink(
            ALERTMANAGER_CHANNEL, am.url, resend_interval_ms=am.resend_interval_ms, timeout_s=am.timeout_s
        )
    for w in settings.feed.webhooks:
        sinks[f"webhook.{w.name}"] = WebhookSink(f"webhook.{w.name}", w.url, secret=w.secret.reveal(),
                                                 timeout_s=w.timeout_s)  # fmt: skip
    return sinks


def build_jobs(config: Config, db: Engine, metrics: Metrics) -> list[Job]:
    return build_action_layer(config, db, metrics).jobs(db)


def jobs_interval_ms(config: Config) -> int:
    return parse(config.alerts).jobs.interval_ms


def build_snapshot_hook(config: Config, db: Engine) -> Callable[[list[Any]], int]:
    """What the worker calls with each batch's ``account.snapshot`` events."""
    return AccountDirectory(db).observe


@dataclass(frozen=True)
class Console:
    """What the console / HTTP API engineer uses.

    ``cases``: list/get/assign/comment/change_status/set_priority/audit_trail/report
    (:class:`~secmon.alerts.cases.CaseService`).  ``redeem_not_me_link(token)``: the
    "this wasn't me" endpoint (None when no signing key is configured)."""

    cases: CaseService
    not_me: NotMeService | None

    def redeem_not_me_link(self, token: str) -> Any:
        if self.not_me is None:
            from secmon.alerts.not_me import RedeemResult

            return RedeemResult("invalid")
        return self.not_me.redeem(token)


def build_console(config: Config, db: Engine, metrics: Metrics | None = None) -> Console:
    layer = build_action_layer(config, db, metrics)
    return Console(layer.case_service, layer.not_me)


def describe(config: Config) -> dict[str, Any]:
    """What the action layer will do, for start-up logs and ``check-config``."""
    s = parse(config.alerts)
    return {
        "policy": s.policy or str(DEFAULT_POLICY),
        "cases": s.cases.enabled,
        "notification_channels": list(s.notifications.channels) if s.notifications.enabled else [],
        "not_me_links": bool(s.notifications.not_me.signing_key),
        "alertmanager": bool(s.feed.alertmanager.url),
        "webhooks": [w.name for w in s.feed.webhooks],
    }
