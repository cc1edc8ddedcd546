"""``brute_force``: failed logins against one account, the lockouts they cause, and a
success that follows them.

One detector for the family because all four kinds read the same per-account counters
(one state lookup per login event instead of four):

* ``brute_force`` — many failed logins against one account: a burst on the account
  (fail2ban's default, 5 in 10 min), many from one IP on the account (Auth0's brute-force
  protection, 10 per account and IP) or a long run of failures however slowly they come.
* ``account_lockout`` — the platform locked the account (``account.locked``), or *predicted*:
  our copy of the platform's counter (10 failures within 15 min, reset by a success)
  reached its threshold.  An observed lock that follows a prediction updates the same
  finding (same dedup key, next revision).
* ``repeated_lockout`` — the same account locked again and again (3 locks in 24 h).
* ``compromise_suspected`` — a success from a device that was failing (the attacker's) and
  that the account had not logged in from before, shortly after the failures or after the
  lock they caused ran out (Wazuh rule 40112, Elastic's "successful login after brute
  force").  One or two typos then a success is not an attack (the default needs 5
  failures), nor is the owner on a known device, a new phone after an old tablet's
  retries, or a login after a password reset.

Devices are told apart by a fingerprint (CRC32 of ``device_id``, or of the /24 without
one).  A success settles only the failures of its own device: the owner logging in
meanwhile does not end the attack on the attacker's device, nor its lockout episode.  An
account that locks again before the locked-out side gets in (an attacker returning after
each unlock, an old device retrying a changed password) is one ``account_lockout`` finding,
updated per lock, plus one ``repeated_lockout``.

Counting follows NIST SP 800-63B §5.2.2 and Keycloak/Auth0: the platform's counters reset
on a successful login or a new password.  ``locked`` refusals test no password and are not
guesses (they keep an episode alive and are shown apart).  Findings are per *episode*: an
episode starts at the first failure after a quiet gap and its dedup key is that failure's
event id, so a 2,000-attempt attack gives one ``brute_force`` finding, re-issued
(``revision`` + 1) only when its severity rises or, after a cooldown, its count has
doubled, plus one closing revision with the totals when the episode goes quiet.

State per account: up to four device fingerprints of its successful logins and, only while
there is something to count, an :class:`Attack` struct of integers and lists capped by the
thresholds (the newest N failure times suffice to test "N within the window" exactly), so
memory does not grow with an attack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zlib import crc32

import msgspec

from secmon.contract import (
    AccountLocked,
    AccountUnlocked,
    Event,
    LoginFailed,
    LoginSucceeded,
    PasswordChanged,
    Subject,
    iso_ms,
)
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState
from secmon.detectors.common import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    SEVERITY_NAMES,
    count_by,
    device_print,
    mask_ip,
    push_bounded,
    push_recent,
    pushed,
    settle,
    tier_rank,
    update_due,
)

_FOREVER = 2**62
#: An unchanged account state is re-stamped (for expiry) at most this often.
_REFRESH_MS = DAY_MS


class BruteForceConfig(DetectorConfig, frozen=True, kw_only=True):
    #: Failures on one account within ``burst_window_ms`` that open a finding (fail2ban: 5/10 min).
    burst_failures: int = 5
    burst_window_ms: int = 10 * MINUTE_MS
    #: Failures from one IP on one account within ``ip_window_ms`` (Auth0: 10 per account and IP).
    ip_failures: int = 10
    ip_window_ms: int = HOUR_MS
    #: Failures in one episode that open a finding however slowly they came (rotating IPs).
    episode_failures: int = 20
    #: An episode ends after this long without a failure (counted from the end of a lock the
    #: attack caused, and attempts refused while locked keep it going); the next failure
    #: starts a new one.
    episode_gap_ms: int = HOUR_MS
    #: Failure reasons that are guesses.  ``unknown_account`` has no account to attack,
    #: ``expired_password`` means the password was right, and ``locked`` tested no password
    #: (the owner of a locked account retrying is not an attack; during an episode they are
    #: counted apart, for the explanation).
    counted_reasons: tuple[str, ...] = ("bad_password", "bad_mfa")
    #: Severity is low at the trigger, then medium, high, critical at these episode totals.
    severity_tiers: tuple[int, ...] = (10, 50, 500)
    #: Between escalations an open finding is re-issued only when its count doubled and
    #: this long has passed since the last revision.
    update_cooldown_ms: int = HOUR_MS
    #: The platform's lockout policy: this many failures within ``lockout_window_ms`` (the
    #: counter reset by a success or a new password) lock the account.
    lockout_threshold: int = 10
    lockout_window_ms: int = 15 * MINUTE_MS
    #: Failure reasons the platform's lockout counter counts.
    lockout_reasons: tuple[str, ...] = ("bad_password", "bad_mfa")
    #: An observed lock this soon after a prediction is the same lockout (one finding).
    lock_merge_ms: int = HOUR_MS
    #: Lockouts of one account within ``repeated_window_ms`` that make a ``repeated_lockout``.
    repeated_lockouts: int = 3
    repeated_window_ms: int = DAY_MS
    #: A success from a new device after at least this many failures since the previous
    #: success (or password reset) ...
    compromise_min_failures: int = 5
    #: ... within this long of the last failure (or of the end of the lock they caused) is
    #: ``compromise_suspected``.
    compromise_window_ms: int = 15 * MINUTE_MS
    #: The success must come from a device (without a device id: the /24) or an IP that was
    #: failing: the owner on a new phone after an old tablet's retries is not a takeover.
    compromise_requires_failing_source: bool = True
    #: IPs tracked per account for the per-IP count (least recently used dropped).
    max_ips: int = 4
    max_evidence: int = 10
    #: Device history must outlive the gaps between a user's logins.
    state_ttl_ms: int = 7 * DAY_MS

    def __post_init__(self) -> None:
        for name in ("burst_failures", "ip_failures", "episode_failures", "lockout_threshold",
                     "repeated_lockouts", "compromise_min_failures", "max_ips", "max_evidence"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class Attack(msgspec.Struct, array_like=True, gc=False):
    """Failure and lockout counters of an account, allocated on its first failure or lock.

    Lists are capped (see the config); strings are event ids."""

    f: list[int] = []  # newest failure times (cap burst_failures), cleared by a success
    ips: list[str] = []  # IPs with recent failures, least recently used first (cap max_ips)
    ipf: list[list[int]] = []  # per IP in ``ips``: newest failure times (cap ip_failures)
    last_fail: int = 0
    #: Failures not yet followed by a success from the same device (or a password reset),
    #: per device fingerprint: parallel lists, least recently failing first (cap 4).
    fdev: list[int] = []
    fcnt: list[int] = []
    run: list[int] = []  # the platform's lockout counter as we model it: newest failure times
    run_id: str = ""  # the failure that completed the last predicted lockout
    ep_id: str = ""  # first failure of the current episode ('' = none)
    ep_first: int = 0
    ep_n: int = 0
    ep_rev: int = -1  # revision of the episode's finding (-1 = not reported)
    ep_sev: int = 0
    ep_at: int = 0  # event time of the last revision
    ep_at_n: int = 0  # count at the last revision
    ep_locked: int = 0  # attempts refused because the account was locked (not counted above)
    ep_last: int = 0  # last attempt of the episode, counted or refused
    ev: list[str] = []  # newest failure event ids
    lk_key: str = ""  # dedup key of the open lockout finding ('' = none)
    lk_rev: int = 0
    lk_sev: int = 0
    lk_first: int = 0
    lk_last: int = 0
    lk_n: int = 0  # locks in the open lockout finding
    lk_pred: int = 0  # time of a prediction not yet confirmed by account.locked (0 = none)
    locks: list[int] = []  # times of lockout episodes (cap 8)
    lock_ids: list[str] = []  # their first event ids, parallel to ``locks``
    rl_key: str = ""
    rl_rev: int = 0
    rl_sev: int = 0
    rl_last: int = 0


class LoginState(KeyState, array_like=True):
    """Per account: known devices (every account that logs in) and, while there is
    something to count, its :class:`Attack` counters."""

    dev: tuple[int, ...] = ()  # CRC32s of devices (or /24s) with a successful login, newest last (cap 4)
    locked_until: int = 0
    unlocked: int = 0  # when the last lock ended by timeout
    a: Attack | None = None


_LOCK_SEVERITY = {"too_many_failures": 2, "admin": 1, "risk": 3}
#: Unlocks that prove the owner is back in control (a reset link, a support check).
_OWNER_UNLOCKS = frozenset({"password_reset", "support", "admin"})


class BruteForce(Detector[BruteForceConfig, LoginState]):
    name = "brute_force"
    kinds = ("brute_force", "account_lockout", "repeated_lockout", "compromise_suspected")
    event_types = frozenset(
        {"login.failed", "login.succeeded", "account.locked", "account.unlocked", "password.changed"}
    )
    Config = BruteForceConfig
    State = LoginState

    def __init__(self, config: BruteForceConfig) -> None:
        super().__init__(config)
        self._counted = frozenset(config.counted_reasons)
        self._lockout = frozenset(config.lockout_reasons)
        self._dispatch: dict[type[Event], Callable[[Any, Context], None]] = {
            LoginFailed: self._failed,
            LoginSucceeded: self._succeeded,
            AccountLocked: self._locked,
            AccountUnlocked: self._unlocked,
            PasswordChanged: self._password_changed,
        }

    def on_event(self, event: Any, ctx: Context) -> None:
        self._dispatch[type(event)](event, ctx)

    def handlers(self) -> dict[str, Callable[[Any, Context], None]]:
        return {t.event_type: h for t, h in self._dispatch.items()}

    # -- failures ------------------------------------------------------------------------
    def _failed(self, e: LoginFailed, ctx: Context) -> None:
        reason = e.payload.reason
        if reason not in self._counted:
            if reason == "locked":
                st = self.state.get(e.account_id)
                if st is not None and st.a is not None and st.a.ep_id:
                    st.a.ep_locked += 1
                    st.a.ep_last = max(st.a.ep_last, e.ts)
                    self.state.put(e.account_id, st, e.ts)
            return
        c = self.config
        key, ts = e.account_id, e.ts
        st = self.state.get(key)
        if st is None:
            st = LoginState()
        a = st.a
        if a is None:
            a = st.a = Attack()
        elif a.ep_id and ts - _episode_ref(st, a) > c.episode_gap_ms:
            a.ep_id, a.ep_n, a.ep_rev, a.ep_sev, a.ep_at_n, a.ep_locked = "", 0, -1, 0, 0, 0
        if not a.ep_id:  # a new episode: its evidence is its own failures
            a.ep_id, a.ep_first = e.event_id, ts
            a.ev.clear()
        a.last_fail = a.ep_last = ts
        a.ep_n += 1
        count_by(a.fdev, a.fcnt, device_print(e.device_id, e.ip), 4)
        push_bounded(a.f, ts, c.burst_failures)
        push_recent(a.ev, e.event_id, c.max_evidence)
        ip_trigger = False
        if e.ip:
            times = self._ip_times(a, e.ip)
            push_bounded(times, ts, c.ip_failures)
            ip_trigger = len(times) >= c.ip_failures and times[0] >= ts - c.ip_window_ms
        burst = len(a.f) >= c.burst_failures and a.f[0] >= ts - c.burst_window_ms
        if reason in self._lockout and ts >= st.locked_until:
            self._count_for_lockout(st, a, e, ctx)
        if a.ep_rev >= 0 or burst or ip_trigger or a.ep_n >= c.episode_failures:
            self._report(a, key, ts, burst, ip_trigger, ctx)
        self.state.put(key, st, ts)

    def _ip_times(self, a: Attack, ip: str) -> list[int]:
        ips = a.ips
        if ips and ips[-1] == ip:
            return a.ipf[-1]
        if ip in ips:
            i = ips.index(ip)
            times = a.ipf.pop(i)
            del ips[i]
        else:
            times = []
            if len(ips) >= self.config.max_ips:
                del ips[0]
                del a.ipf[0]
        ips.append(ip)
        a.ipf.append(times)
        return times

    def _report(self, a: Attack, account: str, now: int, burst: bool, ip_trigger: bool, ctx: Context,
                closing: bool = False) -> None:
        c = self.config
        rank = tier_rank(a.ep_n, c.severity_tiers, base=1)
        if a.ep_rev < 0:
            a.ep_rev = 0
            ctx.schedule(account, now + c.episode_gap_ms, "episode_end")
        elif closing or update_due(a.ep_sev, rank, a.ep_at, now, c.update_cooldown_ms, a.ep_n >= 2 * a.ep_at_n):
            a.ep_rev += 1
        else:
            return
        a.ep_sev, a.ep_at, a.ep_at_n = max(rank, a.ep_sev), now, a.ep_n
        per_ip = max((sum(1 for t in times if t >= now - c.ip_window_ms) for times in a.ipf), default=0)
        in_burst = sum(1 for t in a.f if t >= now - c.burst_window_ms)
        triggers = [name for name, on in (("burst", burst), ("per_ip", ip_trigger),
                                          ("episode_total", a.ep_n >= c.episode_failures),
                                          ("episode_end", closing)) if on]
        minutes = max(1, round((a.last_fail - a.ep_first) / MINUTE_MS))
        n_ips = len(a.ips)
        ctx.emit(
            kind="brute_force",
            severity=SEVERITY_NAMES[a.ep_sev],
            dedup_key=f"{account}|{a.ep_id}",
            account_id=account,
            first_seen_ms=a.ep_first,
            last_seen_ms=a.last_fail,
            evidence=_evidence(a.ep_id, a.ev),
            summary=(
                f"{a.ep_n} failed logins against this account in {minutes} min from "
                f"{n_ips if n_ips < c.max_ips else f'{n_ips}+'} IP address{'es' if n_ips != 1 else ''}: "
                "someone may be guessing its password."
            ),
            explanation={
                "failures": a.ep_n,
                "attempts_while_locked": a.ep_locked,
                "triggers": triggers or ["update"],
                "burst_failures": in_burst,
                "burst_threshold": c.burst_failures,
                "burst_window_ms": c.burst_window_ms,
                "max_failures_one_ip": per_ip,
                "ip_threshold": c.ip_failures,
                "ip_window_ms": c.ip_window_ms,
                "episode_threshold": c.episode_failures,
                "distinct_ips_tracked": n_ips,
                "episode_started": a.ep_first,
                "episode_over": closing,
                "severity_tiers": list(c.severity_tiers),
            },
            subject=Subject(ip=a.ips[-1]) if n_ips == 1 else None,
            revision=a.ep_rev,
        )

    def on_timer(self, key: str, tag: str, ctx: Context) -> None:
        """End of a quiet gap after a reported episode: one closing revision with the totals
        (only if the count grew since the last one).  Re-armed at most once per gap."""
        st = self.state.get(key)
        a = st.a if st is not None else None
        if st is None or a is None or not a.ep_id or a.ep_rev < 0:
            return
        due = _episode_ref(st, a) + self.config.episode_gap_ms
        if due > ctx.now_ms:
            ctx.schedule(key, due, "episode_end")
            return
        if a.ep_n > a.ep_at_n:
            self._report(a, key, ctx.now_ms, False, False, ctx, closing=True)
            self.state.put(key, st, ctx.now_ms)

    # -- lockouts ------------------------------------------------------------------------
    def _count_for_lockout(self, st: LoginState, a: Attack, e: LoginFailed, ctx: Context) -> None:
        c = self.config
        ts = e.ts
        push_bounded(a.run, ts, c.lockout_threshold)
        if a.lk_pred and ts - a.lk_pred > c.lock_merge_ms:
            a.lk_pred = 0  # the predicted lock never came: the platform's policy differs
        n = sum(1 for t in a.run if t >= ts - c.lockout_window_ms)
        if n < c.lockout_threshold or a.lk_pred:
            return
        a.lk_pred, a.run_id = ts, e.event_id
        if a.lk_key and ts - a.lk_last <= c.repeated_window_ms:
            return  # a lockout episode is open: the coming lock will update it
        first, listed = _lockout_failures(a, ts, c.lockout_window_ms)
        a.lk_key, a.lk_rev, a.lk_sev, a.lk_first, a.lk_last, a.lk_n = (
            f"{e.account_id}|lock|{e.event_id}", 0, 2, first, ts, 0)
        ctx.emit(
            kind="account_lockout",
            severity="medium",
            dedup_key=a.lk_key,
            account_id=e.account_id,
            first_seen_ms=a.lk_first,
            last_seen_ms=e.ts,
            evidence=_evidence(e.event_id, listed),
            summary=(
                f"{n} failed logins within {c.lockout_window_ms // MINUTE_MS} min reached the platform's "
                "lockout threshold: the account is about to be locked."
            ),
            explanation={
                "predicted": True,
                "observed": False,
                "lockouts": 0,
                "failures_in_window": n,
                "lockout_threshold": c.lockout_threshold,
                "lockout_window_ms": c.lockout_window_ms,
            },
            revision=0,
        )

    def _locked(self, e: AccountLocked, ctx: Context) -> None:
        """An observed lock: it confirms a prediction, extends an open lockout episode
        (locked again with no successful login since) or opens a new finding."""
        c = self.config
        key, ts, p = e.account_id, e.ts, e.payload
        st = self.state.get(key) or LoginState()
        a = st.a
        if a is None:
            a = st.a = Attack()
        sev = _LOCK_SEVERITY.get(p.reason, 2)
        predicted = bool(a.lk_pred) and ts - a.lk_pred <= c.lock_merge_ms
        first, listed = _lockout_failures(a, ts, c.lockout_window_ms)
        if a.lk_key and (predicted or ts - a.lk_last <= c.repeated_window_ms):
            a.lk_rev += 1
            sev = max(sev, a.lk_sev)
        else:
            a.lk_key, a.lk_rev, a.lk_first, a.lk_n = f"{key}|lock|{e.event_id}", 0, first, 0
        a.lk_n += 1
        a.lk_sev, a.lk_last = sev, ts
        locked_until = _FOREVER
        if p.locked_until is not None:
            locked_until = int(p.locked_until.timestamp() * 1000)
        if a.lk_n == 1:
            what = "as predicted" if predicted else f"reason: {p.reason.replace('_', ' ')}"
            summary = f"The platform locked the account after {p.failed_attempts} failed attempts ({what})."
        else:
            summary = f"The platform locked the account again ({a.lk_n} locks with no successful login between)."
        ctx.emit(
            kind="account_lockout",
            severity=SEVERITY_NAMES[sev],
            dedup_key=a.lk_key,
            account_id=key,
            first_seen_ms=a.lk_first,
            last_seen_ms=ts,
            evidence=[e.event_id, *reversed(listed)],
            summary=summary,
            explanation={
                "predicted": predicted,
                "observed": True,
                "lockouts": a.lk_n,
                "reason": p.reason,
                "failed_attempts": p.failed_attempts,
                # As every time in a finding: UTC, ms ("Z").  The event's own offset is not kept
                # (events that crossed the fetch process arrive in UTC).
                "locked_until": iso_ms(locked_until) if p.locked_until else None,
                "failures_in_lockout_window": sum(1 for t in a.run if t >= ts - c.lockout_window_ms),
                "lockout_threshold": c.lockout_threshold,
            },
            revision=a.lk_rev,
        )
        self._lock_episode(a, key, ts, e.event_id, ctx)
        a.lk_pred, a.run_id = 0, ""
        a.run.clear()
        st.locked_until = locked_until
        self.state.put(key, st, ts)

    def _unlocked(self, e: AccountUnlocked, ctx: Context) -> None:
        st = self.state.get(e.account_id)
        if st is None:
            return
        st.locked_until = 0
        a = st.a
        if a is not None:
            a.run.clear()
            a.lk_pred = 0
            if e.payload.by in _OWNER_UNLOCKS:
                a.fdev.clear()  # the owner proved control: earlier failures lead to no compromise
                a.fcnt.clear()
        if e.payload.by == "timeout":
            st.unlocked = e.ts
        self.state.put(e.account_id, st, e.ts)

    def _password_changed(self, e: PasswordChanged, ctx: Context) -> None:
        """A new password: earlier guesses are moot (NIST 800-63B resets the counters)."""
        st = self.state.get(e.account_id)
        if st is not None and st.a is not None:
            st.a.fdev.clear()
            st.a.fcnt.clear()
            st.a.run.clear()
            self.state.put(e.account_id, st, e.ts)

    def _lock_episode(self, a: Attack, key: str, ts: int, first_id: str, ctx: Context) -> None:
        """Count one observed lock; three in the window make a ``repeated_lockout``."""
        c = self.config
        push_bounded(a.locks, ts, 8)
        push_recent(a.lock_ids, first_id, 8)
        horizon = ts - c.repeated_window_ms
        recent = [i for i, t in enumerate(a.locks) if t >= horizon]
        n = len(recent)
        if n < c.repeated_lockouts:
            return
        rank = tier_rank(n, (2 * c.repeated_lockouts, 4 * c.repeated_lockouts), base=2)
        if a.rl_key and ts - a.rl_last <= c.repeated_window_ms:
            if rank <= a.rl_sev:
                a.rl_last = ts
                return
            a.rl_rev += 1
        else:
            a.rl_key, a.rl_rev = f"{key}|repeated|{a.lock_ids[recent[0]]}", 0
        a.rl_sev, a.rl_last = rank, ts
        ctx.emit(
            kind="repeated_lockout",
            severity=SEVERITY_NAMES[rank],
            dedup_key=a.rl_key,
            account_id=key,
            first_seen_ms=a.locks[recent[0]],
            last_seen_ms=ts,
            evidence=[a.lock_ids[i] for i in recent],
            summary=f"The account was locked {n} times in {c.repeated_window_ms // HOUR_MS} h: a sustained attack.",
            explanation={
                "lockouts": n,
                "threshold": c.repeated_lockouts,
                "window_ms": c.repeated_window_ms,
                "lockout_times": [t for t in a.locks if t >= horizon],
            },
            revision=a.rl_rev,
        )

    # -- successes -----------------------------------------------------------------------
    def _succeeded(self, e: LoginSucceeded, ctx: Context) -> None:
        key, ts = e.account_id, e.ts
        device = e.device_id  # device_print's usual case, inlined: this runs for every login
        fp = crc32(device.encode()) if device else device_print(None, e.ip)
        st = self.state.get(key)
        if st is None:
            self.state.put(key, LoginState(dev=(fp,) if fp else ()), ts)
            return
        a, dev = st.a, st.dev
        latest = fp and dev and dev[-1] == fp  # the device of the last success (truthy)
        if a is None and latest and ts - st.t < _REFRESH_MS:
            return  # the usual device again, nothing to count: no write (the common case)
        if latest:
            known = True  # the list stays as it is
        elif not fp:
            known = False
        else:
            known = fp in dev
            st.dev = pushed(tuple(d for d in dev if d != fp) if known else dev, fp, 4)  # fp moves last
        if a is not None:
            c = self.config
            failures = sum(a.fcnt)
            from_failing = fp in a.fdev or (bool(e.ip) and e.ip in a.ips)
            if (failures >= c.compromise_min_failures and not known
                    and (from_failing or not c.compromise_requires_failing_source)):
                self._maybe_compromised(st, a, e, failures, ctx)
            self._reset_on_success(st, a, fp)
        self.state.put(key, st, ts)

    def _maybe_compromised(self, st: LoginState, a: Attack, e: LoginSucceeded, failures: int,
                           ctx: Context) -> None:
        """A success from a device the account has not used before, shortly after the
        failures (or after the lock they caused ran out)."""
        c = self.config
        ts = e.ts
        ref, after = a.last_fail, "the last failed attempt"
        if st.unlocked > ref:
            ref, after = st.unlocked, "the lock expired"
        elif 0 < st.locked_until <= ts and st.locked_until > ref:
            ref, after = st.locked_until, "the lock expired"
        if ts - ref > c.compromise_window_ms:
            return
        from_attacker = bool(e.ip) and e.ip in a.ips
        ctx.emit(
            kind="compromise_suspected",
            severity="high" if from_attacker else "medium",
            dedup_key=f"{e.account_id}|{e.event_id}",
            account_id=e.account_id,
            first_seen_ms=a.ep_first or a.last_fail,
            last_seen_ms=ts,
            evidence=[e.event_id, *_evidence(a.ep_id, a.ev)],
            summary=(
                f"A successful login from a new device{f' ({mask_ip(e.ip)})' if e.ip else ''} came "
                f"{max(1, round((ts - ref) / MINUTE_MS))} min after {after}, following {failures} failed "
                "attempts: the attacker may have guessed the password."
            ),
            explanation={
                "failures_before_success": failures,
                "min_failures": c.compromise_min_failures,
                "minutes_since": round((ts - ref) / MINUTE_MS, 1),
                "since": "lock_expired" if ref != a.last_fail else "last_failure",
                "window_ms": c.compromise_window_ms,
                "known_device": False,
                "from_an_attacking_ip": from_attacker,
                "mfa": e.payload.mfa,
                "source": "account",
            },
            subject=Subject(ip=e.ip, asn=e.asn) if e.ip else None,
        )

    def _reset_on_success(self, st: LoginState, a: Attack, fp: int) -> None:
        """NIST SP 800-63B / Keycloak / Auth0: a success resets the platform's counters.
        The episode itself stays open until a quiet gap, so an attack that goes on after
        the owner logs in updates the same finding instead of opening a second one.

        A success settles only the failures of its own device (the user's typos, or an
        attacker who got in and was reported): the owner logging in elsewhere meanwhile
        ends neither the attack on the failing device nor its lockout episode."""
        was_failing = settle(a.fdev, a.fcnt, fp) > 0
        a.f.clear()
        for times in a.ipf:
            times.clear()
        a.run.clear()
        a.lk_pred = 0
        if was_failing or not a.fdev:
            a.lk_key = ""  # the locked-out side got in: the next lock is a new episode
        st.locked_until = 0  # ``unlocked`` stays: the failing device may succeed right after
        if a.ep_rev < 0 and not a.fdev:  # a few typos, never reported: nothing to remember
            a.ep_id, a.ep_n = "", 0
        if not a.ep_id and not a.rl_key and not a.locks:
            st.a = None  # nothing left to remember: back to the small per-account state


def _episode_ref(st: LoginState, a: Attack) -> int:
    """When the episode was last active: its last attempt, or the end of the lock it caused
    (an attacker cannot go on while the account is locked)."""
    ref = max(a.ep_last, st.unlocked)
    if st.locked_until < _FOREVER:
        ref = max(ref, st.locked_until)
    return ref


def _lockout_failures(a: Attack, ts: int, window_ms: int) -> tuple[int, list[str]]:
    """The failures that led to a lock at ``ts``: those within the lockout window (``a.run``
    holds the times of the lockout-counted ones since the last success).  Returns when the
    first of them happened (``ts`` if none: a lock for risk, or long after the failures) and
    the ids to list: as many of the newest failure ids (``a.ev``).  Every lockout-counted
    failure is in ``a.ev`` too, so its newest n are no older than the n-th newest of them."""
    times = [t for t in a.run if ts - window_ms <= t <= ts]
    if not times:
        return ts, []
    return min(times), a.ev[-len(times):]


def _evidence(first: str, recent: list[str]) -> list[str]:
    """The episode's first event, then the newest ones (bounded, most relevant first)."""
    out = [first] if first else []
    out.extend(i for i in reversed(recent) if i != first)
    return out
