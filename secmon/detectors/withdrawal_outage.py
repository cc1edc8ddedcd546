"""``withdrawal_outage``: many accounts failing to withdraw the same way at once — a platform incident.

A source detector.  ``withdrawal_failures`` (account tasks) forwards every failed withdrawal,
with the network of its request, under ``wdfail:<reason>:<network>``; here one task sees all
failures of one key across partitions.  An outage opens when, within ``window_ms`` (5 min):

- at least ``min_accounts`` (20) distinct accounts failed, or
- at least ``rate_min_accounts`` (8) did and that is ``rate_factor`` (10×) the usual number
  of failures per window — an EWMA over past windows, learnt only outside outages (an
  outage does not train its own baseline) and trusted after ``baseline_min_buckets``.

It is one platform finding (``account_id`` null, ``subject.reason``/``network``,
``high``; escalated to ``critical`` by a new revision once ``critical_accounts`` accounts
are affected) and is resolved (``status="resolved"``, revision + 1) when no failure of that
key has arrived for ``quiet_ms`` (an event-time timer, re-armed by every failure).  The
per-account ``withdrawal_failures`` findings carry the same ``outage_key`` so the action
layer groups them under this one.

Needs ``withdrawal_failures`` enabled (it is what forwards the failures).  State per key
(few: reasons × networks) is bounded by ``max_tracked`` accounts (~40 KB at most).
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterable
from typing import Any

from secmon.contract import Subject
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState, Scope, SourceRecord
from secmon.detectors.common import DAY_MS, MINUTE_MS, push_recent
from secmon.detectors.withdrawal_failures import UNKNOWN_NETWORK


class WithdrawalOutageConfig(DetectorConfig, frozen=True, kw_only=True):
    #: The failure baseline of a key is worth keeping for a week.
    state_ttl_ms: int = 7 * DAY_MS
    window_ms: int = 5 * MINUTE_MS
    min_accounts: int = 20
    rate_factor: float = 10.0
    rate_min_accounts: int = 8
    #: Weight of the latest window in the usual rate (EWMA).
    baseline_alpha: float = 0.1
    baseline_min_buckets: int = 12
    #: No failure for this long ends the outage.
    quiet_ms: int = 15 * MINUTE_MS
    critical_accounts: int = 100
    max_tracked: int = 1000

    def __post_init__(self) -> None:
        if min(self.window_ms, self.min_accounts, self.rate_min_accounts, self.quiet_ms, self.max_tracked) < 1:
            raise ValueError("windows, account thresholds and max_tracked must be >= 1")
        if not 0.0 < self.baseline_alpha <= 1.0:
            raise ValueError("baseline_alpha must be in (0, 1]")


class OutageState(KeyState, kw_only=True, gc=False):
    recent: dict[str, int] = {}  # account → its last failure in the window, oldest first
    evidence: list[str] = []  # latest failure event ids ...
    evidence_at: list[int] = []  # ... and their times (none in a checkpoint from before 2026-11-27)
    bucket: int = -1  # current window-length bucket (ts // window_ms)
    bucket_n: int = 0  # failures in it
    usual: float = 0.0  # EWMA of failures per window, outside outages
    buckets: int = 0  # windows folded into ``usual``
    # The open outage (ep_first == 0: none).
    ep_first: int = 0
    ep_last: int = 0
    ep_rev: int = -1
    ep_trigger: str = ""
    ep_accounts: bytes = b""  # uint32 CRCs of the accounts affected
    ep_evidence: list[str] = []


class WithdrawalOutage(Detector[WithdrawalOutageConfig, OutageState]):
    name = "withdrawal_outage"
    kinds = ("withdrawal_outage",)
    event_types = frozenset({"withdrawal.failed"})
    scope = Scope.SOURCE
    Config = WithdrawalOutageConfig
    State = OutageState

    @classmethod
    def forwarded_types(cls, config: DetectorConfig) -> Iterable[str]:
        return ()  # fed by withdrawal_failures' ctx.forward (it knows each failure's network)

    def on_event(self, record: SourceRecord, ctx: Context) -> None:
        cfg = self.config
        key = record.key
        st = self.state.get(key) or OutageState()
        ts = record.ts
        self._count_bucket(st, ts)
        recent = st.recent
        recent.pop(record.account_id, None)
        recent[record.account_id] = ts
        horizon = ts - cfg.window_ms
        while recent:
            first = next(iter(recent))
            if recent[first] > horizon and len(recent) <= cfg.max_tracked:
                break
            del recent[first]
        push_recent(st.evidence, record.event_id, 20)
        push_recent(st.evidence_at, ts, 20)
        n = len(recent)
        if st.ep_first:
            st.ep_last = ts
            known = array("I", st.ep_accounts)
            crc = zlib.crc32(record.account_id.encode())
            if crc not in known and len(known) < cfg.max_tracked:
                known.append(crc)
                st.ep_accounts = known.tobytes()
            push_recent(st.ep_evidence, record.event_id, 20)
            if st.ep_rev == 0 and len(known) >= cfg.critical_accounts:
                self._emit(key, st, ctx, n)
        else:
            trigger = ""
            if n >= cfg.min_accounts:
                trigger = "accounts"
            elif (
                st.buckets >= cfg.baseline_min_buckets
                and n >= cfg.rate_min_accounts
                and n >= cfg.rate_factor * max(st.usual, 0.1)
            ):
                trigger = "rate"
            if trigger:
                st.ep_first, st.ep_last, st.ep_rev, st.ep_trigger = min(recent.values()), ts, -1, trigger
                st.ep_accounts = array("I", (zlib.crc32(a.encode()) for a in recent)).tobytes()
                # The outage's own failures: the key's earlier ones (hours before, some) are not.
                # Times pair with the newest ids (a state from an older checkpoint has fewer).
                ids = st.evidence[len(st.evidence) - len(st.evidence_at):]
                st.ep_evidence = [i for i, t in zip(ids, st.evidence_at, strict=True) if t >= st.ep_first]
                self._emit(key, st, ctx, n)
        if st.ep_first:
            ctx.schedule(key, ts + cfg.quiet_ms, "quiet")
        self.state.put(key, st, ts)

    def on_timer(self, key: str, tag: str, ctx: Context) -> None:
        st = self.state.get(key)
        if st is None or not st.ep_first or ctx.now_ms < st.ep_last + self.config.quiet_ms:
            return
        self._emit(key, st, ctx, len(st.recent), resolved=True)
        st.ep_first = st.ep_last = 0
        st.ep_rev = -1
        st.ep_trigger = ""
        st.ep_accounts = b""
        st.ep_evidence = []
        st.recent = {}
        self.state.put(key, st, ctx.now_ms)

    def _count_bucket(self, st: OutageState, ts: int) -> None:
        """Fold finished windows into the usual rate (not during an outage)."""
        b = ts // self.config.window_ms
        if st.bucket < 0:
            st.bucket = b
        elif b > st.bucket:
            if not st.ep_first:
                keep = 1.0 - self.config.baseline_alpha
                gap = b - st.bucket
                st.usual = (st.usual * keep + st.bucket_n * self.config.baseline_alpha) * keep ** min(gap - 1, 10_000)
                st.buckets += gap
            st.bucket, st.bucket_n = b, 0
        st.bucket_n += 1

    def _emit(self, key: str, st: OutageState, ctx: Context, in_window: int, resolved: bool = False) -> None:
        cfg = self.config
        _, reason, network = [*key.split(":", 2), "", ""][:3]
        network = network or UNKNOWN_NETWORK
        affected = len(st.ep_accounts) // 4
        minutes = cfg.window_ms // MINUTE_MS
        st.ep_rev += 1
        explanation: dict[str, Any] = {
            "outage_key": key,
            "reason": reason,
            "network": network,
            "owner": "platform",
            "trigger": st.ep_trigger,
            "accounts_in_window": in_window,
            "accounts_affected": affected,
            "window_ms": cfg.window_ms,
            "min_accounts": cfg.min_accounts,
            "usual_failures_per_window": round(st.usual, 3),
            "rate_factor": cfg.rate_factor,
            "quiet_ms": cfg.quiet_ms,
        }
        if resolved:
            summary = (
                f"Withdrawals on {network} failing with {reason} ({affected} accounts) have stopped: "
                f"no failure for {cfg.quiet_ms // MINUTE_MS} min."
            )
        else:
            summary = (
                f"Withdrawals on {network} are failing with {reason} for {affected} accounts "
                f"({in_window} within {minutes} min; usually {st.usual:.1f} failures per {minutes} min): "
                "a platform incident."
            )
        ctx.emit(
            kind="withdrawal_outage",
            severity="critical" if affected >= cfg.critical_accounts else "high",
            dedup_key=f"{key}:{st.ep_first}",
            account_id=None,
            first_seen_ms=st.ep_first,
            last_seen_ms=st.ep_last,
            evidence=st.ep_evidence,
            summary=summary,
            explanation=explanation,
            subject=Subject(reason=reason, network=network),
            status="resolved" if resolved else "open",
            revision=st.ep_rev,
        )
