"""``withdrawal_failures``: repeated failed withdrawals of one account.

``min_failures`` (3) ``withdrawal.failed`` within ``window_ms`` (1 h) with reasons of the same
owner open one finding per episode; a ``withdrawal.completed`` ends the episode (two
failures then a success is a user who got there).  The owner says who must act:
``account_mismatch``, ``insufficient_funds`` and ``limit_exceeded`` are the user's to fix
(``low``); ``bank_rejected``, ``chain_error`` and ``risk_hold`` are the platform's
(``medium``).  Counting per owner keeps the finding's advice single: two chain errors and a
limit hit are two stories, neither of them repeated.

The network of a failure comes from its ``withdrawal.requested`` (the failure event only has
the ``tx_id``), kept in a small bounded map.  Each failure is forwarded, with its network,
to the source tasks under ``wdfail:<reason>:<network>`` for ``withdrawal_outage``.

During an outage this detector still reports each account (it cannot see the platform-wide
picture from one partition), but every finding carries ``explanation.outage_key`` — the
same key as the ``withdrawal_outage`` finding's — so the action layer groups the accounts
under the open outage instead of opening one case per user.
"""

from __future__ import annotations

from collections import Counter
from typing import Final, cast

import msgspec

from secmon.contract import Subject, WithdrawalCompleted, WithdrawalFailed, WithdrawalRequested, money
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState, SourceRecord
from secmon.detectors.common import HOUR_MS, MINUTE_MS

OWNER: Final = {
    "account_mismatch": "user",
    "insufficient_funds": "user",
    "limit_exceeded": "user",
    "bank_rejected": "platform",
    "chain_error": "platform",
    "risk_hold": "platform",
}
_ADVICE: Final = {
    "user": "the user must fix it (destination details, balance or limits)",
    "platform": "ours to fix (bank, chain or risk hold), not the user's",
}
UNKNOWN_NETWORK: Final = "unknown"


def outage_key(reason: str, network: str) -> str:
    """The source key shared by forwarded failures and the outage finding."""
    return f"wdfail:{reason}:{network}"


class WithdrawalFailuresConfig(DetectorConfig, frozen=True, kw_only=True):
    min_failures: int = 3
    window_ms: int = HOUR_MS
    #: Pending withdrawals remembered per account for their network (settled ones are
    #: forgotten; beyond this many the oldest is dropped).
    max_txs: int = 16

    def __post_init__(self) -> None:
        if self.min_failures < 1 or self.window_ms <= 0 or self.max_txs < 1:
            raise ValueError("min_failures and max_txs must be >= 1, window_ms > 0")


def _pop_tx(st: WdState, tx_id: str) -> TxRef | None:
    """Remove and return a pending withdrawal (settled ones need no memory)."""
    for i, t in enumerate(st.txs):
        if t.tx_id == tx_id:
            return st.txs.pop(i)
    return None


class TxRef(msgspec.Struct, array_like=True, gc=False):
    tx_id: str
    network: str
    usd: float


class Failure(msgspec.Struct, array_like=True, gc=False):
    ts: int
    event_id: str
    tx_id: str
    reason: str
    network: str


class WdState(KeyState, kw_only=True, gc=False):
    txs: list[TxRef] = []
    fails: list[Failure] = []
    episode: str = ""  # event id of the episode's first failure once it has been reported


class WithdrawalFailures(Detector[WithdrawalFailuresConfig, WdState]):
    name = "withdrawal_failures"
    kinds = ("withdrawal_failures",)
    event_types = frozenset({"withdrawal.requested", "withdrawal.completed", "withdrawal.failed"})
    Config = WithdrawalFailuresConfig
    State = WdState

    def on_event(self, event: WithdrawalRequested | WithdrawalCompleted | WithdrawalFailed, ctx: Context) -> None:
        key = event.account_id
        st = self.state.get(key)
        if type(event) is WithdrawalRequested:
            p = event.payload
            st = st or WdState()
            st.txs.append(TxRef(p.tx_id, p.network, money(p.amount_usd)))
            if len(st.txs) > self.config.max_txs:
                del st.txs[0]
            self.state.put(key, st, event.ts)
            return
        if type(event) is WithdrawalCompleted:
            if st is not None and (st.fails or st.episode or st.txs):
                _pop_tx(st, event.payload.tx_id)
                st.fails.clear()
                st.episode = ""
                if st.txs:
                    self.state.put(key, st, event.ts)
                else:
                    self.state.delete(key)  # nothing left to remember: the same as no state
            return
        st = st or WdState()
        failed = cast(WithdrawalFailed, event)
        tx_id, reason = failed.payload.tx_id, failed.payload.reason
        ref = _pop_tx(st, tx_id)
        network = ref.network if ref is not None else UNKNOWN_NETWORK
        if ctx.can_forward:
            ctx.forward(
                SourceRecord(
                    key=outage_key(reason, network),
                    event_type="withdrawal.failed",
                    event_id=event.event_id,
                    account_id=key,
                    ts=event.ts,
                    reason=reason,
                    network=network,
                    amount_usd=ref.usd if ref is not None else None,
                )
            )
        horizon = event.ts - self.config.window_ms
        fails = st.fails = [f for f in st.fails if f.ts > horizon]
        if not fails:
            st.episode = ""  # a quiet window ends the episode
        fails.append(Failure(event.ts, event.event_id, tx_id, reason, network))
        if len(fails) > 4 * self.config.min_failures:
            del fails[0]
        owner = OWNER.get(reason, "platform")
        same = [f for f in fails if OWNER.get(f.reason, "platform") == owner]
        if len(same) >= self.config.min_failures and not st.episode:
            st.episode = same[0].event_id
            self._emit(key, st, ctx, same)
        self.state.put(key, st, event.ts)

    def _emit(self, account: str, st: WdState, ctx: Context, fails: list[Failure]) -> None:
        reasons = Counter(f.reason for f in fails)
        # The dominant reason; on a tie, the most recent one.
        top = max(reasons, key=lambda r: (reasons[r], max(i for i, f in enumerate(fails) if f.reason == r)))
        network = next(f.network for f in reversed(fails) if f.reason == top)
        owner = OWNER.get(top, "platform")
        counts = ", ".join(f"{r} ×{n}" for r, n in reasons.most_common())
        minutes = self.config.window_ms // MINUTE_MS
        ctx.emit(
            kind="withdrawal_failures",
            severity="medium" if owner == "platform" else "low",
            dedup_key=f"{account}:{st.episode}",
            account_id=account,
            first_seen_ms=fails[0].ts,
            last_seen_ms=fails[-1].ts,
            evidence=[f.event_id for f in fails],
            summary=f"{len(fails)} withdrawals failed within {minutes} min ({counts}): {top} is {_ADVICE[owner]}.",
            explanation={
                "failures": len(fails),
                "min_failures": self.config.min_failures,
                "window_ms": self.config.window_ms,
                "reasons": dict(reasons.most_common()),
                "reason": top,
                "owner": owner,
                "other_failures": {f.reason: OWNER.get(f.reason, "platform") for f in st.fails if f not in fails},
                "networks": sorted({f.network for f in fails}),
                "tx_ids": list(dict.fromkeys(f.tx_id for f in fails)),
                "outage_key": outage_key(top, network),
            },
            subject=Subject(tx_id=fails[-1].tx_id, network=network, reason=top),
        )
