"""The e-mail sink: user messages over SMTP (STARTTLS or implicit TLS, optional AUTH).

One connection per batch.  Every message has a ``Message-ID`` derived from its outbox dedup
key, so a message re-sent after a crash (SMTP cannot tell us whether the server kept it)
is the *same* message to the receiving mail system and the user's client.  The recipient
is the per-account alias ``alerts.notifications.email.recipient``; the wallet's relay maps it
to the address that was verified before ``X-Secmon-Contact-Before`` when that header is set
(a security notice must not go to an address an attacker just put on the account).

Outcomes: no connection, 421 or a dropped connection → the peer is down (the channel
pauses, nothing is lost); other 4xx → retry; 5xx → permanent (dead-lettered, logged).
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from typing import Any

import orjson

from secmon.alerts.settings import EmailSettings
from secmon.alerts.sinks.base import DELIVERED, Failed, Outcome, Retry, Sink
from secmon.contract import parse_ts_ms
from secmon.store.outbox import OutboxItem

_MAIL_SAFE = re.compile(r"[A-Za-z0-9._+-]{1,64}")


def mailbox_for(account_id: str) -> str:
    """The account id as an e-mail local part: itself if mail-safe, else ``h-<hash>``."""
    if _MAIL_SAFE.fullmatch(account_id) and not account_id.startswith(".") and ".." not in account_id:
        return account_id
    return "h-" + hashlib.blake2b(account_id.encode(), digest_size=16).hexdigest()


def message_id(dedup_key: str, domain: str) -> str:
    return f"<{hashlib.sha256(dedup_key.encode()).hexdigest()[:40]}@{domain}>"


def build_message(item: OutboxItem, settings: EmailSettings) -> EmailMessage:
    """The MIME message (text and HTML alternatives) for one outbox row."""
    n: dict[str, Any] = orjson.loads(item.payload)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = settings.from_addr
    msg["To"] = settings.recipient.replace("{account}", mailbox_for(n["account_id"]))
    msg["Subject"] = n["subject"]
    msg["Message-ID"] = message_id(item.dedup_key, settings.message_id_domain)
    msg["Date"] = formatdate(parse_ts_ms(n["created_at"]) / 1000, usegmt=True)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Secmon-Notification"] = n["notification_id"]
    if n.get("contact_verified_before"):
        msg["X-Secmon-Contact-Before"] = n["contact_verified_before"]
    msg.set_content(n["text"])
    if n.get("html"):
        msg.add_alternative(n["html"], subtype="html")
    msg["Content-Language"] = n["locale"]  # after set_content, which drops Content-* headers
    return msg


class SmtpSink(Sink):
    def __init__(self, channel: str, settings: EmailSettings) -> None:
        self.channel = channel
        self.settings = settings

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.cafile)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        if s.ssl:
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=self._context())
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
            if s.starttls:
                conn.starttls(context=self._context())
        if s.username:
            conn.login(s.username, s.password.reveal())
        return conn

    def deliver(self, items: Sequence[OutboxItem]) -> list[Outcome]:
        try:
            conn = self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            return [Retry(f"SMTP authentication failed: {exc.smtp_code}", peer_down=True)] * len(items)
        except (OSError, smtplib.SMTPException) as exc:
            return [Retry(f"{type(exc).__name__}: {exc}", peer_down=True)] * len(items)
        outcomes: list[Outcome] = []
        try:
            for item in items:
                try:
                    msg = build_message(item, self.settings)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    outcomes.append(Failed(f"bad notification row: {type(exc).__name__}"))
                    continue
                try:
                    conn.send_message(msg)
                    outcomes.append(DELIVERED)
                except smtplib.SMTPRecipientsRefused as exc:
                    code = next(iter(exc.recipients.values()))[0]
                    outcomes.append(Failed(f"recipient refused: {code}") if code >= 500
                                    else Retry(f"recipient deferred: {code}"))  # fmt: skip
                except smtplib.SMTPResponseException as exc:
                    if exc.smtp_code == 421:  # service not available: the server is closing
                        outcomes.append(Retry(f"SMTP 421: {exc.smtp_error!r}", peer_down=True))
                        break
                    outcomes.append(Failed(f"SMTP {exc.smtp_code}") if exc.smtp_code >= 500
                                    else Retry(f"SMTP {exc.smtp_code}"))  # fmt: skip
                except (smtplib.SMTPServerDisconnected, OSError) as exc:
                    outcomes.append(Retry(f"{type(exc).__name__}: {exc}", peer_down=True))
                    break
        finally:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()
        if len(outcomes) < len(items):  # the connection went away: the rest waits with it
            last = outcomes[-1]
            outcomes.extend([last] * (len(items) - len(outcomes)))
        return outcomes
