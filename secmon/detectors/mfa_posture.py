"""``mfa_posture``: valuable accounts whose second factor is missing, weak or just removed.

Two kinds that read the same per-account facts (latest balance and enrolled methods), so
one detector and one state lookup:

* ``mfa_weak_posture`` — from ``account.snapshot``: a balance of at least
  ``min_balance_usd`` with no second factor, or only SMS/email (NIST SP 800-63B treats
  SMS/PSTN as *restricted*).  Severity grows with the balance.  Snapshots arrive daily, so
  the finding is issued once per account and posture state; it is re-issued only if the
  posture changes, its severity rises, or after ``cooldown_ms`` (30 days); it is resolved
  when a strong factor appears.  The dedup key holds the cooldown period's index, so even
  a restart that lost the state re-issues the same finding id within a period.
* ``mfa_disabled_risk`` — ``mfa.disabled`` that leaves the account without a second factor,
  when the latest snapshot shows a balance over the threshold (after a short grace: a new
  enrolment from the same device right away is a phone change, not a risk), or when a
  withdrawal or transfer follows within 24 h (the finding fires when the money moves).

The checks themselves live in :mod:`secmon.detectors.mfa_checks`, shared with
``secmon audit-mfa``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from secmon.contract import (
    AccountSnapshot,
    Event,
    MfaDisabled,
    MfaEnrolled,
    TransferSent,
    WithdrawalRequested,
    money,
)
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState
from secmon.detectors.common import DAY_MS, HOUR_MS, MINUTE_MS, SEVERITY_NAMES, SEVERITY_RANK, pushed
from secmon.detectors.mfa_checks import Posture, assess_posture, balance_severity

_BITS = {"totp": 1, "sms": 2, "email": 4, "webauthn": 8, "push": 16}
_UNKNOWN = -1


def _mask(methods: Sequence[str]) -> int:
    m = 0
    for name in methods:
        m |= _BITS.get(name, 0)
    return m


class MfaPostureConfig(DetectorConfig, frozen=True, kw_only=True):
    #: Balance (USD) from which a missing or weak second factor matters.
    min_balance_usd: float = 1_000.0
    #: Severity rises one step at each of these balances (low → medium → high → critical).
    severity_tiers_usd: tuple[float, ...] = (10_000.0, 100_000.0, 1_000_000.0)
    #: Methods that do not count as a strong second factor on their own.
    weak_methods: tuple[str, ...] = ("sms", "email")
    #: An unchanged weak posture is re-issued after this long (not on every daily snapshot).
    cooldown_ms: int = 30 * DAY_MS
    #: A withdrawal or transfer this soon after 2FA removal is ``mfa_disabled_risk``.
    disabled_window_ms: int = DAY_MS
    #: A removal followed within this long by an enrolment from the same device is a
    #: device change: no finding for the removal itself.
    reenrol_grace_ms: int = 10 * MINUTE_MS
    #: Withdrawn amount (USD, within the window) that makes ``mfa_disabled_risk`` critical.
    critical_withdrawal_usd: float = 10_000.0
    report_weak_posture: bool = True
    report_disabled_risk: bool = True
    #: Snapshots are daily: a week without one means the account is gone or dormant.
    state_ttl_ms: int = 8 * DAY_MS


class PostureState(KeyState):
    """Encoded as a map without its default fields: for most accounts all but three are."""

    bal: float = -1.0  # latest known balance, USD (-1 = never seen)
    methods: int = _UNKNOWN  # bitmask of enrolled methods (-1 = never seen)
    wp_state: str = ""  # posture of the open weak-posture finding ('' = none)
    wp_key: str = ""
    wp_rev: int = 0
    wp_sev: int = 0
    wp_open: int = 0  # when it was opened (for the cooldown)
    dis_ts: int = 0  # last 2FA removal that left no factor
    dis_id: str = ""
    dis_method: str = ""
    dis_via: str = ""
    dis_dev: str = ""
    dis_bal: float = -1.0
    dis_rev: int = -1  # revision of its finding (-1 = none yet)
    dis_sev: int = 0
    dis_amt: float = 0.0
    dis_ids: tuple[str, ...] = ()  # withdrawals/transfers after it (cap 5; a tuple: empty for most)


class MfaPosture(Detector[MfaPostureConfig, PostureState]):
    name = "mfa_posture"
    kinds = ("mfa_weak_posture", "mfa_disabled_risk")
    event_types = frozenset(
        {"account.snapshot", "mfa.enrolled", "mfa.disabled", "withdrawal.requested", "transfer.sent"}
    )
    Config = MfaPostureConfig
    State = PostureState

    def __init__(self, config: MfaPostureConfig) -> None:
        super().__init__(config)
        self._weak = frozenset(config.weak_methods)
        self._dispatch: dict[type[Event], Callable[[Any, Context], None]] = {
            AccountSnapshot: self._snapshot,
            MfaEnrolled: self._enrolled,
            MfaDisabled: self._disabled,
            WithdrawalRequested: self._value_leaves,
            TransferSent: self._value_leaves,
        }

    def on_event(self, event: Any, ctx: Context) -> None:
        self._dispatch[type(event)](event, ctx)

    def handlers(self) -> dict[str, Callable[[Any, Context], None]]:
        return {t.event_type: h for t, h in self._dispatch.items()}

    # -- posture ---------------------------------------------------------------------------
    def _snapshot(self, e: AccountSnapshot, ctx: Context) -> None:
        c = self.config
        p = e.payload
        st = self.state.get(e.account_id) or PostureState()
        st.bal = money(p.balance_usd)
        st.methods = _mask(p.mfa_methods)
        if c.report_weak_posture:
            self._assess(st, e, p.mfa_methods, ctx)
        self.state.put(e.account_id, st, e.ts)

    def _assess(self, st: PostureState, e: AccountSnapshot, methods: Sequence[str], ctx: Context) -> None:
        c = self.config
        verdict = assess_posture(
            st.bal, methods, min_balance_usd=c.min_balance_usd,
            severity_tiers_usd=c.severity_tiers_usd, weak_methods=self._weak,
        )
        if verdict is None:
            if st.wp_key and any(m not in self._weak for m in methods):
                st.wp_rev += 1
                self._emit_posture(st, e, "resolved", methods, ctx)
                st.wp_key, st.wp_state = "", ""
            return
        rank = SEVERITY_RANK[verdict.severity]
        if st.wp_key and st.wp_state == verdict.state and e.ts - st.wp_open < c.cooldown_ms:
            if rank <= st.wp_sev:
                return
            st.wp_rev, st.wp_sev = st.wp_rev + 1, rank
        else:
            st.wp_key = f"{e.account_id}|{verdict.state}|{e.ts // c.cooldown_ms}"
            st.wp_state, st.wp_rev, st.wp_sev, st.wp_open = verdict.state, 0, rank, e.ts
        self._emit_posture(st, e, "open", methods, ctx)

    def _emit_posture(self, st: PostureState, e: AccountSnapshot, status: str, methods: Sequence[str],
                      ctx: Context) -> None:
        c = self.config
        if status == "resolved":
            summary = "The account now has a strong second factor: the weak-posture finding is resolved."
        elif st.wp_state == "no_2fa":
            summary = (f"An account holding ${st.bal:,.0f} has no second factor: "
                       "the user should enable an authenticator app or a security key.")
        else:
            summary = (f"An account holding ${st.bal:,.0f} relies only on "
                       f"{' and '.join(m.upper() if m == 'sms' else m for m in sorted(set(methods)))} "
                       "for its second factor: an authenticator app or a security key is safer.")
        ctx.emit(
            kind="mfa_weak_posture",
            severity=SEVERITY_NAMES[st.wp_sev],
            dedup_key=st.wp_key,
            account_id=e.account_id,
            first_seen_ms=st.wp_open,
            last_seen_ms=e.ts,
            evidence=[e.event_id],
            summary=summary,
            explanation={
                **Posture(st.wp_state, SEVERITY_NAMES[st.wp_sev], st.bal, tuple(sorted(set(methods))))
                .explanation(c.min_balance_usd, c.severity_tiers_usd),
                "cooldown_ms": c.cooldown_ms,
            },
            status=status,
            revision=st.wp_rev,
        )

    # -- 2FA removal -------------------------------------------------------------------------
    def _enrolled(self, e: MfaEnrolled, ctx: Context) -> None:
        st = self.state.get(e.account_id)
        if st is None:
            st = PostureState()
        bit = _BITS.get(e.payload.method, 0)
        st.methods = bit if st.methods == _UNKNOWN else st.methods | bit
        if (st.dis_id and st.dis_rev < 0 and e.ts - st.dis_ts <= self.config.reenrol_grace_ms
                and e.device_id == st.dis_dev):
            st.dis_id = ""  # a phone change: removed and re-added from the same device
            ctx.cancel(e.account_id, "disabled")
        self.state.put(e.account_id, st, e.ts)

    def _disabled(self, e: MfaDisabled, ctx: Context) -> None:
        c = self.config
        st = self.state.get(e.account_id) or PostureState()
        if st.methods != _UNKNOWN:
            st.methods &= ~_BITS.get(e.payload.method, 0)
            if st.methods:  # another factor remains: 2FA was not removed
                self.state.put(e.account_id, st, e.ts)
                return
        st.dis_ts, st.dis_id, st.dis_method, st.dis_via = e.ts, e.event_id, e.payload.method, e.payload.via
        st.dis_dev, st.dis_bal, st.dis_rev, st.dis_sev, st.dis_amt = e.device_id or "", st.bal, -1, 0, 0.0
        st.dis_ids = ()
        if c.report_disabled_risk and st.bal >= c.min_balance_usd:
            ctx.schedule(e.account_id, e.ts + c.reenrol_grace_ms, "disabled")
        self.state.put(e.account_id, st, e.ts)

    def on_timer(self, key: str, tag: str, ctx: Context) -> None:
        st = self.state.get(key)
        if st is None or not st.dis_id or st.dis_rev >= 0:
            return
        st.dis_rev = 0
        st.dis_sev = SEVERITY_RANK[balance_severity(st.dis_bal, self.config.severity_tiers_usd, floor=2)]
        self._emit_disabled(st, key, ctx.now_ms, None, ctx)
        self.state.put(key, st, ctx.now_ms)

    def _value_leaves(self, e: WithdrawalRequested | TransferSent, ctx: Context) -> None:
        st = self.state.get(e.account_id)
        if st is None:
            return
        c = self.config
        p = e.payload
        if p.balance_usd_before is not None:
            st.bal = money(p.balance_usd_before)
        if c.report_disabled_risk and st.dis_id and 0 <= e.ts - st.dis_ts <= c.disabled_window_ms:
            first = not st.dis_ids
            st.dis_amt += money(p.amount_usd)
            st.dis_ids = pushed(st.dis_ids, e.event_id, 5)
            rank = 4 if st.dis_amt >= c.critical_withdrawal_usd else 3
            if st.dis_rev < 0 or first or rank > st.dis_sev:
                st.dis_rev += 1
                st.dis_sev = max(rank, st.dis_sev)
                ctx.cancel(e.account_id, "disabled")
                self._emit_disabled(st, e.account_id, e.ts, e, ctx)
        self.state.put(e.account_id, st, e.ts)

    def _emit_disabled(self, st: PostureState, key: str, now: int,
                       e: WithdrawalRequested | TransferSent | None, ctx: Context) -> None:
        c = self.config
        hours = (now - st.dis_ts) / HOUR_MS
        if st.dis_ids:
            what = "transfer" if e is not None and isinstance(e, TransferSent) else "withdrawal"
            summary = (f"Two-factor authentication ({st.dis_method}) was removed and ${st.dis_amt:,.0f} "
                       f"left the account {hours:.1f} h later ({what}): a takeover pattern.")
        else:
            summary = (f"Two-factor authentication ({st.dis_method}) was removed from an account "
                       f"holding ${st.dis_bal:,.0f}.")
        ctx.emit(
            kind="mfa_disabled_risk",
            severity=SEVERITY_NAMES[st.dis_sev],
            dedup_key=f"{key}|{st.dis_id}",
            account_id=key,
            first_seen_ms=st.dis_ts,
            # The latest evidence: what left, or the removal itself when the grace for a new
            # second factor ran out (``detected_at`` is then the end of the grace).
            last_seen_ms=now if e is not None else st.dis_ts,
            evidence=[st.dis_id, *st.dis_ids],
            summary=summary,
            explanation={
                "method_removed": st.dis_method,
                "via": st.dis_via,
                "balance_usd_at_removal": round(st.dis_bal, 2) if st.dis_bal >= 0 else None,
                "min_balance_usd": c.min_balance_usd,
                "withdrawn_usd_since": round(st.dis_amt, 2),
                "withdrawals_since": len(st.dis_ids),
                "hours_since_removal": round(hours, 2),
                "window_ms": c.disabled_window_ms,
                "critical_withdrawal_usd": c.critical_withdrawal_usd,
            },
            revision=st.dis_rev,
        )
