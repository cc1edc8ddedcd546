"""``account_takeover``: risky access, then a credential/2FA/contact change, a new address, and value out.

The sequence, per account, within ``window_ms`` (24 h) of the risky access:

1. **risky access** — a successful login from a device or country the account has not
   used before (only once the account has a known one: a first login is not "new"), a
   login after ``attack_min_failures`` failures since the last success and within
   ``attack_window_ms`` (an account under attack; ``unknown_account`` failures are not
   counted, and hold no state: there is no such account, and a combo list is mostly such
   names), or a ``compromise_suspected`` finding of
   another detector of the same task (``finding_kinds``);
2. **change** — ``password.changed``, ``mfa.disabled``, ``contact.changed``,
   ``recovery_code.used`` or ``mfa.enrolled`` (an intruder enrolling their own TOTP locks
   the owner out), from ``change_lookback_ms`` (1 h) before the access — the intruder who
   resets the password, then logs in with it — to ``change_within_ms`` (2 h) after it — an
   intruder locks the owner out first, not hours later;
3. **new address** — ``address.added`` after the access (before or after the change);
4. **value out** — ``withdrawal.requested`` to an address added in step 3, or, without a new
   address, a ``transfer.sent`` moving at least ``transfer_min_share`` of the balance
   (``balance_usd_before``; a transfer without it does not count) to another account.

Steps 2–4 count only when made from a risky access's (new) device, from a device the account
never logged in from, or with none (support, the ledger): the owner acting from their own
phone is not the intruder.

Steps 1–3 raise a ``high`` finding once; step 4 escalates the same finding (same dedup key,
``revision`` + 1) to ``critical`` (or opens it as ``critical`` when the value left by a
transfer).  Access plus a change alone (a user who resets a password on a new phone) raises
nothing, nor does a withdrawal to an address the account already had.  Every finding
recommends holding withdrawals (``explanation.recommended_action = "hold_withdrawals"``).

The sequence spans ``auth.events`` and ``wallet.events``: both topics must be
co-partitioned — the same partition count, both keyed by ``account_id`` — so one task sees
all events of an account.  The Kafka worker checks this at start-up
(``secmon.sources.kafka.check_copartitioned``) and refuses to run otherwise.

Known devices are 32-bit CRCs of ``device_id`` (bounded), known countries their ISO codes
(bounded); an account's state is about 0.5 KB (measured: ``bench/tx_cost.py``).
"""

from __future__ import annotations

import sys
import zlib
from array import array
from collections.abc import Callable
from typing import Any

import msgspec

from secmon.contract import (
    AddressAdded,
    Event,
    Finding,
    LoginFailed,
    LoginSucceeded,
    MfaChallengeFailed,
    Subject,
    TransferSent,
    WithdrawalRequested,
    iso_ms,
    money,
)
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState
from secmon.detectors.common import DAY_MS, HOUR_MS, count_from, pushed

assert array("I").itemsize == 4, "packed device CRCs are 32-bit"

CHANGE_TYPES = frozenset({"password.changed", "mfa.disabled", "contact.changed", "recovery_code.used", "mfa.enrolled"})
_CHANGE_TEXT = {
    "password.changed": "password changed",
    "mfa.disabled": "2FA disabled",
    "contact.changed": "contact changed",
    "recovery_code.used": "recovery code used",
    "mfa.enrolled": "a new 2FA method enrolled",
}
_MAX_STEP_ITEMS = 4
_WALLET_STEPS = frozenset({AddressAdded, WithdrawalRequested, TransferSent})
#: An unchanged account's state is re-saved (its idle clock reset) at most this often.
_TOUCH_MS = HOUR_MS


class AccountTakeoverConfig(DetectorConfig, frozen=True, kw_only=True):
    #: Known devices and countries are the baseline: keep an idle account's for a month.
    state_ttl_ms: int = 30 * DAY_MS
    #: The whole sequence must fit in this window after the risky access.
    window_ms: int = DAY_MS
    #: Failed logins/MFA challenges before a success that make the access risky.
    attack_min_failures: int = 5
    attack_window_ms: int = HOUR_MS
    max_devices: int = 16
    max_countries: int = 8
    #: A transfer moving at least this share of the balance is value leaving (step 4).
    transfer_min_share: float = 0.5
    #: A change counts from this long before the risky access (reset, then login) to this
    #: long after it (an attacker locks the owner out first, not hours later).
    change_lookback_ms: int = HOUR_MS
    change_within_ms: int = 2 * HOUR_MS

    def __post_init__(self) -> None:
        if (
            min(self.window_ms, self.attack_window_ms, self.attack_min_failures, self.max_devices, self.max_countries)
            < 1
        ):
            raise ValueError("windows, attack_min_failures, max_devices and max_countries must be >= 1")
        if not 0.0 < self.transfer_min_share <= 1.0:
            raise ValueError("transfer_min_share must be in (0, 1]")


class Episode(msgspec.Struct, kw_only=True, gc=False):
    """One sequence in progress, from its risky access."""

    a_ts: int
    a_id: str  # event id of the access (or the compromise finding id): the dedup key
    a_devs: list[int] = []  # CRCs of the risky accesses' devices
    why: list[str]
    c_ts: int = 0
    changes: list[str] = []  # event types
    c_ids: list[str] = []
    n_ts: int = 0
    addrs: list[str] = []
    n_ids: list[str] = []
    rev: int = -1  # last emitted revision
    done: bool = False  # value left: the finding is complete


class Change(msgspec.Struct, array_like=True, gc=False):
    ts: int
    event_type: str
    event_id: str


class AtoState(KeyState, kw_only=True, gc=False, array_like=True):
    devices: bytes = b""  # uint32 CRCs of device ids of successful logins, most recent last
    # Tuples (common.pushed): short, and for most accounts empty (the empty tuple is shared).
    countries: tuple[str, ...] = ()  # most recent last
    fails: tuple[int, ...] = ()  # times of recent failed logins and MFA challenges
    changes: tuple[Change, ...] = ()  # recent changes from unknown devices, outside an episode (lookback)
    ep: Episode | None = None


class AccountTakeover(Detector[AccountTakeoverConfig, AtoState]):
    name = "account_takeover"
    kinds = ("account_takeover",)
    event_types = frozenset(
        {
            "login.succeeded",
            "login.failed",
            "mfa.challenge_failed",
            "address.added",
            "withdrawal.requested",
            "transfer.sent",
        }
        | CHANGE_TYPES
    )
    finding_kinds = frozenset({"compromise_suspected"})
    Config = AccountTakeoverConfig
    State = AtoState

    def __init__(self, config: AccountTakeoverConfig) -> None:
        super().__init__(config)
        #: (account, time, device CRC) of the login being handled: a ``compromise_suspected``
        #: finding arrives while it is (transient, never checkpointed).
        self._login_seen: tuple[str, int, int] = ("", 0, 0)

    def handlers(self) -> dict[str, Callable[[Any, Context], None]]:
        return super().handlers() | {"login.failed": self._login_failed}

    def _login_failed(self, event: LoginFailed, ctx: Context) -> None:
        if event.payload.reason != "unknown_account":  # no such account: nothing to take over
            self.on_event(event, ctx)

    def on_event(self, event: Event, ctx: Context) -> None:
        key = event.account_id
        st = self.state.get(key)
        if st is None:
            if type(event) in _WALLET_STEPS:
                return  # no access seen, no episode: nothing to continue
            st = AtoState()
        elif st.ep is None and type(event) in _WALLET_STEPS:
            return  # the common case: wallet activity outside any episode
        ts = event.ts
        ep = st.ep
        if ep is not None and ts - ep.a_ts > self.config.window_ms:
            ep = st.ep = None
        if type(event) is LoginFailed or type(event) is MfaChallengeFailed:
            st.fails = pushed(st.fails, ts, 4 * self.config.attack_min_failures)
        elif type(event) is LoginSucceeded:
            if not self._login(st, event) and st.ep is None and ts - st.t < _TOUCH_MS:
                return  # the owner's usual device and country: nothing changed worth saving
        elif event.event_type in CHANGE_TYPES:
            self._change(st, event, ctx)
        elif ep is not None and _suspect_device(st, ep, _device(event.device_id)):
            if type(event) is AddressAdded:
                if len(ep.addrs) < _MAX_STEP_ITEMS and event.payload.address not in ep.addrs:
                    ep.n_ts = ep.n_ts or ts
                    ep.addrs.append(event.payload.address)
                    ep.n_ids.append(event.event_id)
                    self._maybe_emit(st, event, ctx)
            elif type(event) is WithdrawalRequested:
                if ep.rev == 0 and not ep.done and event.payload.to_address in ep.addrs:
                    self._emit(ep, event, ctx, value_out=event)
            elif type(event) is TransferSent and not ep.done and ep.changes and self._moves_most(event):
                self._emit(ep, event, ctx, value_out=event)
        self.state.put(key, st, ts)

    def on_finding(self, finding: Finding, ctx: Context) -> None:
        if finding.account_id is None:
            return
        st = self.state.get(finding.account_id) or AtoState()
        # Emitted while its login is handled: that login's device, if this detector saw it first.
        account, ts, dev = self._login_seen
        if account != finding.account_id or ts != ctx.now_ms:
            dev = 0
        self._open(st, ctx.now_ms, finding.finding_id, f"compromise suspected ({finding.summary.rstrip('.')})", dev)
        self.state.put(finding.account_id, st, ctx.now_ms)

    def _login(self, st: AtoState, event: LoginSucceeded) -> bool:
        """Learn the device and country; open an episode if the access is risky.  Returns
        whether the state changed (the usual device and country, most recent, change nothing)."""
        cfg = self.config
        ts = event.ts
        why: list[str] = []
        changed = False
        dev = _device(event.device_id)
        self._login_seen = (event.account_id, ts, dev)
        new_dev = 0
        if dev and st.devices[-4:] != dev.to_bytes(4, sys.byteorder):  # not the last device used
            changed = True
            known = array("I", st.devices)
            if dev in known:
                known.remove(dev)
            elif known:
                why.append("login from a new device")
                new_dev = dev
            known.append(dev)
            if len(known) > cfg.max_devices:
                del known[0]
            st.devices = known.tobytes()
        country = event.geo.country if event.geo is not None else None
        if country and not (st.countries and st.countries[-1] == country):
            changed = True
            countries = st.countries
            if country in countries:
                countries = tuple(c for c in countries if c != country)
            elif countries:
                why.append(f"login from a new country ({country}; known: {', '.join(countries)})")
            # Interned: one string per country, not one per account.
            st.countries = pushed(countries, sys.intern(country), cfg.max_countries)
        if st.fails:
            changed = True
            recent = count_from(st.fails, ts - cfg.attack_window_ms)
            if recent >= cfg.attack_min_failures:
                why.append(f"login after {recent} failed attempts within {cfg.attack_window_ms // 60_000} min")
            st.fails = ()  # failures count since the last success
        if why:
            self._open(st, ts, event.event_id, "; ".join(why), new_dev)
        elif dev and st.ep is not None and st.ep.a_ts == ts and dev not in st.ep.a_devs:
            st.ep.a_devs.append(dev)  # the compromise finding of this very login came first
        return changed or bool(why)

    def _change(self, st: AtoState, event: Event, ctx: Context) -> None:
        """A change counts when made from the risky access's device, a device the account had
        not logged in from, or none (support, admin): not when the owner's known device made it."""
        dev = _device(event.device_id)
        ep = st.ep
        if (
            ep is not None
            and _suspect_device(st, ep, dev)
            and event.ts - ep.a_ts <= self.config.change_within_ms
            and len(ep.changes) < _MAX_STEP_ITEMS
        ):
            _add_change(ep, event.ts, event.event_type, event.event_id)
            self._maybe_emit(st, event, ctx)
        elif not dev or dev not in array("I", st.devices):  # remembered for a later access
            horizon = event.ts - self.config.change_lookback_ms
            st.changes = (
                *(c for c in st.changes[1 - _MAX_STEP_ITEMS :] if c.ts >= horizon),
                Change(event.ts, event.event_type, event.event_id),
            )

    def _open(self, st: AtoState, ts: int, ident: str, why: str, dev: int) -> None:
        """Start an episode at this access, or add it to the one in progress (an episode
        that has seen no change and no new address restarts at the newest access)."""
        ep = st.ep
        if ep is not None and ts - ep.a_ts <= self.config.window_ms and (ep.changes or ep.addrs):
            if why not in ep.why and len(ep.why) < _MAX_STEP_ITEMS:
                ep.why.append(why)
            if dev and dev not in ep.a_devs and len(ep.a_devs) < _MAX_STEP_ITEMS:
                ep.a_devs.append(dev)
            return
        st.ep = ep = Episode(a_ts=ts, a_id=ident, why=[why], a_devs=[dev] if dev else [])
        for c in st.changes:
            if c.ts >= ts - self.config.change_lookback_ms:
                _add_change(ep, c.ts, c.event_type, c.event_id)
        st.changes = ()

    def _moves_most(self, event: TransferSent) -> bool:
        balance = event.payload.balance_usd_before
        return (
            balance is not None
            and money(event.payload.amount_usd) >= self.config.transfer_min_share * money(balance) > 0
        )

    def _maybe_emit(self, st: AtoState, event: Event, ctx: Context) -> None:
        ep = st.ep
        if ep is not None and ep.rev < 0 and ep.changes and ep.addrs:
            self._emit(ep, event, ctx, value_out=None)

    def _emit(
        self, ep: Episode, event: Event, ctx: Context, value_out: WithdrawalRequested | TransferSent | None
    ) -> None:
        ep.rev += 1
        ep.done = value_out is not None
        changes = ", ".join(dict.fromkeys(_CHANGE_TEXT[c] for c in ep.changes))
        steps: dict[str, Any] = {
            # Copies: the episode's lists grow after this revision, the finding must not.
            "risky_access": {"at": iso_ms(ep.a_ts), "why": list(ep.why), "evidence": ep.a_id},
            "change": {"at": iso_ms(ep.c_ts), "what": list(ep.changes)},
        }
        if ep.addrs:
            steps["new_address"] = {"at": iso_ms(ep.n_ts), "addresses": list(ep.addrs)}
        evidence = [ep.a_id, *ep.c_ids, *ep.n_ids]
        subject_addr = ep.addrs[0] if ep.addrs else None
        tx_id = None
        middle = " and a new withdrawal address was added" if ep.addrs else ""
        tail = ""
        if value_out is not None:
            p = value_out.payload
            usd = money(p.amount_usd)
            step: dict[str, Any] = {
                "at": iso_ms(value_out.ts),
                "tx_id": p.tx_id,
                "amount_usd": round(usd, 2),
                "asset": p.asset,
            }
            if isinstance(value_out, WithdrawalRequested):
                steps["withdrawal"] = step | {"to_address": p.to_address}  # type: ignore[union-attr]
                subject_addr = p.to_address  # type: ignore[union-attr]
                tail = f", and a withdrawal of {usd:,.2f} USD (tx {p.tx_id}) to it was requested"
            else:
                steps["transfer"] = step | {"to_account": p.to_account}  # type: ignore[union-attr]
                tail = f", and {usd:,.2f} USD (tx {p.tx_id}) was transferred to another account"
            evidence.insert(0, value_out.event_id)
            tx_id = p.tx_id
        ctx.emit(
            kind="account_takeover",
            severity="critical" if value_out is not None else "high",
            dedup_key=f"{event.account_id}:{ep.a_id}",
            account_id=event.account_id,
            # A change made just before the access (a reset, then the login) is its first evidence.
            first_seen_ms=min(ep.a_ts, ep.c_ts) if ep.c_ts else ep.a_ts,
            last_seen_ms=event.ts,
            evidence=evidence,
            summary=f"Possible account takeover: {'; '.join(ep.why)}, then {changes}{middle}{tail}. "
            "Hold withdrawals until the owner confirms.",
            explanation={
                "sequence": list(steps),
                "complete": value_out is not None,
                "steps": steps,
                "window_ms": self.config.window_ms,
                "recommended_action": "hold_withdrawals",
            },
            subject=Subject(address=subject_addr, tx_id=tx_id),
            revision=ep.rev,
        )


def _suspect_device(st: AtoState, ep: Episode, dev: int) -> bool:
    """Whether an action may be the intruder's: from a risky access's device, a device the
    account never logged in from, or none (support, the ledger) — not the owner's own."""
    return not dev or dev in ep.a_devs or dev not in array("I", st.devices)


def _device(device_id: str | None) -> int:
    """A device id as a 32-bit CRC (0: none); ids are never stored in clear."""
    return zlib.crc32(device_id.encode()) or 1 if device_id else 0


def _add_change(ep: Episode, ts: int, event_type: str, event_id: str) -> None:
    ep.c_ts = min(ep.c_ts, ts) if ep.c_ts else ts
    ep.changes.append(event_type)
    ep.c_ids.append(event_id)
