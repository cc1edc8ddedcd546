"""Each account's locale, remembered from its latest ``account.snapshot``.

Findings do not carry the user's language and detectors may only emit findings, so the
worker hands the decoded snapshot events of each poll batch to :meth:`AccountDirectory.observe`
(``Worker.on_snapshots``) *before* the batch's findings are committed.  The write is an
idempotent "newest snapshot wins" upsert in its own short transaction: a batch replayed
after a crash writes the same rows again, and a crash before it leaves the offsets unmoved,
so the snapshot is seen again.  Until an account's first snapshot, messages use
``alerts.notifications.default_locale``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from secmon.alerts.tables import account_profile
from secmon.clock import wall_ms
from secmon.store.fastexec import run

log = logging.getLogger(__name__)
#: Looked up for every message: built once (building costs more than running it).
_LOCALE_OF = select(account_profile.c.locale).where(account_profile.c.account_id == bindparam("account_id"))


def normalize_locale(tag: str | None, supported: Sequence[str], default: str) -> str:
    """The supported locale closest to a BCP 47 tag: exact (any case), else the same
    language (``zh-Hant-TW`` → ``zh-CN``, ``en-GB`` → ``en``), else ``default``."""
    if not tag:
        return default
    want = tag.replace("_", "-").strip().lower()
    for loc in supported:
        if loc.lower() == want:
            return loc
    lang = want.split("-", 1)[0]
    for loc in supported:
        if loc.lower().split("-", 1)[0] == lang:
            return loc
    return default


class AccountDirectory:
    """The ``account_profile`` table: account → locale (raw BCP 47 tag) and when it was seen."""

    def __init__(self, engine: Engine, *, clock: Callable[[], int] = wall_ms) -> None:
        self.engine = engine
        self.clock = clock

    def observe(self, snapshots: Iterable[Any]) -> int:
        """Remember the locales of decoded ``account.snapshot`` events; returns rows written.

        Never raises: a failed write only means messages use the default locale until the
        next snapshot (it is logged)."""
        latest: dict[str, tuple[str, int]] = {}
        for ev in snapshots:
            prev = latest.get(ev.account_id)
            if prev is None or ev.ts >= prev[1]:
                latest[ev.account_id] = (ev.payload.locale, ev.ts)
        if not latest:
            return 0
        try:
            with self.engine.begin() as conn:
                self.record(conn, [(a, loc, ts) for a, (loc, ts) in latest.items()], self.clock())
        except Exception:
            log.exception("could not record %d account locales; messages fall back to the default", len(latest))
            return 0
        return len(latest)

    def record(self, conn: Connection, rows: Sequence[tuple[str, str, int]], now_ms: int) -> None:
        """Upsert ``(account_id, locale, seen_ms)``; an older snapshot never overwrites a newer one."""
        if not rows:
            return
        ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(account_profile)
        stmt = ins.on_conflict_do_update(
            index_elements=["account_id"],
            set_={
                "locale": ins.excluded.locale,
                "seen_ms": ins.excluded.seen_ms,
                "updated_ms": ins.excluded.updated_ms,
            },
            where=account_profile.c.seen_ms <= ins.excluded.seen_ms,
        )
        conn.execute(
            stmt,
            [{"account_id": a, "locale": loc[:35], "seen_ms": ts, "updated_ms": now_ms} for a, loc, ts in rows],
        )

    @staticmethod
    def locale_tag(conn: Connection, account_id: str) -> str | None:
        """The raw locale of the account's latest snapshot, or None if none was seen."""
        return run(conn, _LOCALE_OF, {"account_id": account_id}).scalar_one_or_none()
