"""``mfa_bruteforce``: many failed MFA challenges on one account.

Whoever fails a second-factor challenge already has the password, so the floor is low:
Okta's default is 5 failures per 5 minutes.  The explanation turns the count into what it
means: the attacker's cumulative chance of having guessed a code.  A verifier that accepts
±1 time step accepts 3 of the 10^6 six-digit codes on each try, so after n tries the chance
is 1 - (1 - 3/10^6)^n — e.g. "1,240 tries: 0.37%".  Severity follows that chance, and a
challenge that *succeeds* after the failures makes the finding critical.

One finding per episode (first failure after an ``episode_gap_ms`` quiet gap); revisions
only when the severity rises or, after a cooldown, the count has doubled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secmon.contract import LoginFailed, MfaChallengeFailed, MfaChallengeSucceeded, Subject
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState
from secmon.detectors.common import (
    HOUR_MS,
    MINUTE_MS,
    SEVERITY_NAMES,
    count_by,
    device_print,
    pct,
    push_bounded,
    push_recent,
    settle,
    update_due,
)
from secmon.detectors.mfa_checks import guess_probability


class MfaBruteforceConfig(DetectorConfig, frozen=True, kw_only=True):
    #: Failed challenges within ``window_ms`` that open a finding (Okta's floor: 5 in 5 min).
    failures: int = 5
    window_ms: int = 5 * MINUTE_MS
    #: Failed challenges in one episode that open a finding however slowly they came
    #: (push-fatigue attacks pace their prompts minutes apart).
    episode_failures: int = 10
    #: Code length of the platform's TOTP (RFC 6238 default 6).
    digits: int = 6
    #: Time steps accepted either side of now: ±1 → 3 valid codes per try.
    accepted_steps: int = 1
    #: Cumulative guessing chance at which severity becomes high, then critical.
    high_probability: float = 0.001
    critical_probability: float = 0.01
    #: An episode ends after this long without a failed challenge.
    episode_gap_ms: int = HOUR_MS
    #: Between escalations, re-issue only when the count doubled and this long passed.
    update_cooldown_ms: int = 30 * MINUTE_MS
    #: Also count ``login.failed`` with reason ``bad_mfa`` (off by default: a platform that
    #: emits both for one attempt would be counted twice).
    count_login_bad_mfa: bool = False
    max_evidence: int = 10

    def __post_init__(self) -> None:
        if self.failures < 1 or self.episode_failures < 1 or self.digits < 1 or self.accepted_steps < 0:
            raise ValueError("failures, episode_failures and digits must be >= 1, accepted_steps >= 0")


class MfaState(KeyState, array_like=True):
    f: list[int] = []  # newest failure times (cap ``failures``)
    last: int = 0
    ep_id: str = ""
    ep_first: int = 0
    ep_n: int = 0
    ep_rev: int = -1
    ep_sev: int = 0
    ep_at: int = 0
    ep_at_n: int = 0
    ev: list[str] = []
    fdev: list[int] = []  # device fingerprints with failed challenges not yet settled ...
    fcnt: list[int] = []  # ... and how many each (parallel, cap 4)


class MfaBruteforce(Detector[MfaBruteforceConfig, MfaState]):
    name = "mfa_bruteforce"
    kinds = ("mfa_bruteforce",)
    event_types = frozenset({"mfa.challenge_failed", "mfa.challenge_succeeded"})
    Config = MfaBruteforceConfig
    State = MfaState

    def __init__(self, config: MfaBruteforceConfig) -> None:
        super().__init__(config)
        if config.count_login_bad_mfa:
            # Per instance: the task routes by ``det.event_types``, so login failures reach
            # this detector only when they are counted.
            self.event_types = self.event_types | {"login.failed"}  # type: ignore[misc]
        self._valid_codes = 2 * config.accepted_steps + 1
        self._by_type: dict[str, Callable[[Any, Context], None]] = {
            "mfa.challenge_succeeded": self._succeeded,
            "mfa.challenge_failed": self._failed,
            "login.failed": self._login_failed,
        }

    def on_event(self, e: Any, ctx: Context) -> None:
        self._by_type[e.event_type](e, ctx)

    def handlers(self) -> dict[str, Callable[[Any, Context], None]]:
        return {t: h for t, h in self._by_type.items() if t in self.event_types}

    def _login_failed(self, e: LoginFailed, ctx: Context) -> None:
        if e.payload.reason == "bad_mfa":
            self._failed(e, ctx)

    def _failed(self, e: MfaChallengeFailed | LoginFailed, ctx: Context) -> None:
        c = self.config
        key, ts = e.account_id, e.ts
        st = self.state.get(key)
        if st is None:
            st = MfaState()
        elif st.ep_id and ts - st.last > c.episode_gap_ms:
            st.ep_id, st.ep_n, st.ep_rev, st.ep_sev, st.ep_at_n = "", 0, -1, 0, 0
            st.fdev.clear()
            st.fcnt.clear()
        if not st.ep_id:  # a new episode: its evidence is its own failures
            st.ep_id, st.ep_first = e.event_id, ts
            st.ev.clear()
        st.last = ts
        st.ep_n += 1
        count_by(st.fdev, st.fcnt, device_print(e.device_id, e.ip), 4)
        push_bounded(st.f, ts, c.failures)
        push_recent(st.ev, e.event_id, c.max_evidence)
        burst = len(st.f) >= c.failures and st.f[0] >= ts - c.window_ms
        if st.ep_rev >= 0 or burst or st.ep_n >= c.episode_failures:
            chance = guess_probability(st.ep_n, c.digits, self._valid_codes)
            rank = 4 if chance >= c.critical_probability else 3 if chance >= c.high_probability else 2
            if st.ep_rev < 0:
                st.ep_rev = 0
                self._emit(st, e, rank, chance, False, ctx)
            elif update_due(st.ep_sev, rank, st.ep_at, ts, c.update_cooldown_ms, st.ep_n >= 2 * st.ep_at_n):
                st.ep_rev += 1
                self._emit(st, e, max(rank, st.ep_sev), chance, False, ctx)
        self.state.put(key, st, ts)

    def _succeeded(self, e: MfaChallengeSucceeded, ctx: Context) -> None:
        """A passed challenge settles the failures of its own device: a user who fumbled a
        code or two, or — after a reported episode's worth of failures — an attacker who
        got in (critical).  The owner passing a challenge on another device meanwhile
        leaves the attack on the failing device counting; the episode ends when no
        failing device is left."""
        st = self.state.get(e.account_id)
        if st is None:
            return
        c = self.config
        mine = settle(st.fdev, st.fcnt, device_print(e.device_id, e.ip))
        if st.ep_rev >= 0 and mine >= c.failures and e.ts - st.last <= c.episode_gap_ms:
            st.ep_rev += 1
            chance = guess_probability(st.ep_n, c.digits, self._valid_codes)
            self._emit(st, e, 4, chance, True, ctx)
        if not st.fdev:
            # Every failing device settled: the episode is over and nothing is left that a
            # fresh state lacks (the next failure starts a new episode, with its own evidence).
            # Forgotten, so the account's next passed challenges cost one lookup.
            self.state.delete(e.account_id)
            return
        self.state.put(e.account_id, st, e.ts)

    def _emit(self, st: MfaState, e: Any, rank: int, chance: float, succeeded: bool, ctx: Context) -> None:
        c = self.config
        st.ep_sev, st.ep_at, st.ep_at_n = rank, e.ts, st.ep_n
        in_window = sum(1 for t in st.f if t >= e.ts - c.window_ms)
        method = getattr(e.payload, "method", None)
        push = method == "push"
        odds = f"{st.ep_n:,} tries: {pct(chance)}"
        if push and succeeded:
            summary = (f"A push prompt was approved after {st.ep_n:,} declined ones: the user may have "
                       "given in to push fatigue and let an attacker in.")
        elif push:
            summary = (f"{st.ep_n:,} push prompts declined or ignored: someone with the password is "
                       "trying to wear the user down (push fatigue).")
        elif succeeded:
            summary = (f"A second-factor code was accepted after {st.ep_n:,} failed challenges "
                       f"(a {pct(chance)} chance of a lucky guess): the account may be taken over.")
        else:
            summary = (f"{st.ep_n:,} failed second-factor challenges: someone with the password is "
                       f"guessing codes ({pct(chance)} chance of success so far).")
        evidence = [st.ep_id, *(i for i in reversed(st.ev) if i != st.ep_id)]
        if succeeded:
            evidence.insert(0, e.event_id)
        ctx.emit(
            kind="mfa_bruteforce",
            severity=SEVERITY_NAMES[rank],
            dedup_key=f"{e.account_id}|{st.ep_id}",
            account_id=e.account_id,
            first_seen_ms=st.ep_first,
            last_seen_ms=e.ts,
            evidence=evidence,
            summary=summary,
            explanation={
                "failed_challenges": st.ep_n,
                "failures_in_window": in_window,
                "threshold": c.failures,
                "window_ms": c.window_ms,
                "episode_threshold": c.episode_failures,
                "digits": c.digits,
                "valid_codes_per_try": self._valid_codes,
                "guess_probability": None if push else chance,
                "odds": None if push else odds,
                "accepted_after_failures": succeeded,
                "method": method,
            },
            subject=Subject(ip=e.ip, asn=e.asn) if e.ip else None,
            revision=st.ep_rev,
        )
