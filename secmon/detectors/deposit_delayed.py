"""``deposit_delayed``: a deposit initiated but not credited within its SLA.

``deposit.initiated`` sets an event-time timer at initiation + the network's SLA
(``sla_ms_by_network``, else ``sla_ms``, 30 min).  A ``deposit.credited`` for the same
``tx_id`` at or before that time cancels it: nothing is emitted (a deposit credited at
29 min is fine).  When the timer fires (the watermark passed the due time) the finding
opens, ``detected_at`` = the due time, so the user can be told before they ask.  When the
credit arrives later, the same finding is emitted again with ``status="resolved"`` and
``revision`` + 1, and the action layer closes its case.

If the credit arrives after the SLA but before the timer fired (the watermark lags the
event by up to the allowed lateness), the deposit *was* late: the delayed finding and its
resolution are emitted together, so the record is the same whatever the lag.

State per account: the pending deposits (at most ``max_pending``, oldest dropped), each
about 100 bytes; an account with none pending has no state.
"""

from __future__ import annotations

from typing import cast

import msgspec

from secmon.contract import DepositCredited, DepositInitiated, Subject, iso_ms, money
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState
from secmon.detectors.common import DAY_MS, MINUTE_MS


class DepositDelayedConfig(DetectorConfig, frozen=True, kw_only=True):
    #: A deposit still uncredited keeps its account's state for a week.
    state_ttl_ms: int = 7 * DAY_MS
    #: Default SLA: initiated → credited.
    sla_ms: int = 30 * MINUTE_MS
    #: Per-network SLA (network as in the event, e.g. ``BTC``, ``TRON``, ``bank``).
    sla_ms_by_network: dict[str, int] = {}
    #: Deposits of at least this many USD are ``high`` rather than ``medium``.
    high_value_usd: float = 10_000.0
    max_pending: int = 32

    def __post_init__(self) -> None:
        if self.sla_ms <= 0 or any(v <= 0 for v in self.sla_ms_by_network.values()) or self.max_pending < 1:
            raise ValueError("SLAs must be > 0 ms and max_pending >= 1")


class Pending(msgspec.Struct, array_like=True, gc=False):
    tx_id: str
    ts: int
    due: int
    network: str
    asset: str
    usd: float
    event_id: str
    fired: bool = False


class DepositState(KeyState, kw_only=True, gc=False):
    pending: list[Pending] = []


class DepositDelayed(Detector[DepositDelayedConfig, DepositState]):
    name = "deposit_delayed"
    kinds = ("deposit_delayed",)
    event_types = frozenset({"deposit.initiated", "deposit.credited"})
    Config = DepositDelayedConfig
    State = DepositState

    def on_event(self, event: DepositInitiated | DepositCredited, ctx: Context) -> None:
        key = event.account_id
        st = self.state.get(key)
        if type(event) is DepositInitiated:
            p = event.payload
            if st is None:
                st = DepositState()
            elif any(d.tx_id == p.tx_id for d in st.pending):
                return  # a second initiation of the same deposit changes nothing
            sla = self.config.sla_ms_by_network.get(p.network, self.config.sla_ms)
            pending = st.pending
            if len(pending) >= self.config.max_pending:
                ctx.cancel(key, pending.pop(0).tx_id)
            pending.append(
                Pending(p.tx_id, event.ts, event.ts + sla, p.network, p.asset, money(p.amount_usd), event.event_id)
            )
            ctx.schedule(key, event.ts + sla, p.tx_id)
            self.state.put(key, st, event.ts)
            return
        if st is None:
            return
        tx_id = event.payload.tx_id
        dep = next((d for d in st.pending if d.tx_id == tx_id), None)
        if dep is None:
            return  # a credit without an initiation we saw: nothing was promised
        st.pending.remove(dep)
        if st.pending:
            self.state.put(key, st, event.ts)
        else:
            self.state.delete(key)  # nothing pending: an account with no state is the same
        if not dep.fired:
            ctx.cancel(key, dep.tx_id)
            if event.ts <= dep.due:
                return
            self._emit(key, dep, ctx, credited=None)  # late, but the watermark had not passed it
        self._emit(key, dep, ctx, credited=cast(DepositCredited, event))

    def on_timer(self, key: str, tag: str, ctx: Context) -> None:
        st = self.state.get(key)
        if st is None:
            return
        for dep in st.pending:
            if dep.tx_id == tag and not dep.fired:
                dep.fired = True
                self.state.put(key, st, ctx.now_ms)
                self._emit(key, dep, ctx, credited=None)
                return

    def _emit(self, account: str, dep: Pending, ctx: Context, credited: DepositCredited | None) -> None:
        sla = dep.due - dep.ts
        explanation = {
            "network": dep.network,
            "asset": dep.asset,
            "amount_usd": round(dep.usd, 2),
            "sla_ms": sla,
            "initiated_at": iso_ms(dep.ts),
            "due_at": iso_ms(dep.due),
        }
        amount = f"{dep.usd:,.2f} USD" if dep.usd else dep.asset
        if credited is None:
            summary = (
                f"Deposit of {amount} (tx {dep.tx_id}) on {dep.network} was not credited within its "
                f"{sla // MINUTE_MS} min SLA."
            )
            evidence = [dep.event_id]
            last, detected = dep.ts, dep.due
        else:
            delay = credited.ts - dep.ts
            explanation |= {"credited_at": iso_ms(credited.ts), "delay_ms": delay}
            summary = (
                f"Deposit of {amount} (tx {dep.tx_id}) on {dep.network} was credited after {delay // MINUTE_MS} min."
            )
            evidence = [dep.event_id, credited.event_id]
            last, detected = credited.ts, credited.ts
        ctx.emit(
            kind="deposit_delayed",
            severity="high" if dep.usd >= self.config.high_value_usd else "medium",
            dedup_key=f"{account}:{dep.tx_id}",
            account_id=account,
            first_seen_ms=dep.ts,
            last_seen_ms=last,
            detected_at_ms=detected,
            evidence=evidence,
            summary=summary,
            explanation=explanation,
            subject=Subject(tx_id=dep.tx_id, network=dep.network),
            status="open" if credited is None else "resolved",
            revision=0 if credited is None else 1,
        )
