"""Injected, labelled attack and incident scenarios: one function per finding kind.

Each function takes free accounts from the :class:`Planner`, adjusts them where the story
needs it (a takeover victim with only SMS, a valuable account, an active trader), creates
its label(s) and puts steps into the accounts' agendas (or, for stateless attacks on many
accounts, emits directly).  The shapes follow the issue's definitions and what such attacks
look like in the wild:

* brute force: one IP hammering one account (20–200 attempts), fast ones locked by the
  platform's policy (10 bad passwords in 15 min → 30 min lock), slow ones (one attempt per
  2–4 minutes) never locked, a quarter of those ending in a successful login;
* credential stuffing: one IP, or a bot rotating inside one /24, trying 50–300 accounts with
  1–2 attempts each within minutes; most names do not exist (``unknown_account``), a few
  passwords work;
* password spraying: one to three common passwords tried once on each of 100–400 accounts,
  round after round over hours, from 20–80 addresses of one ASN;
* account takeover: a login from a new device in a new country (often after failures, or
  after a SIM swap, a recovery code, a social-engineered support reset) → credential, 2FA or
  contact change → new withdrawal address → most of the balance leaves;
* withdrawal outage: 30–80 accounts' withdrawals failing with ``bank_rejected`` or
  ``chain_error`` on one network within minutes (and everybody else's too, meanwhile);
* weak TOTP enrolments: short secrets, the pyotp documentation's ``JBSWY3DPEHPK3PXP``, the
  RFC 6238 test key, repeated or sequential characters, ``digits=4``, ``period=120``.

An account takes part in at most one scenario; a story that fits several definitions is
labelled once per kind under one ``group`` (see :mod:`secmon.sim.labels`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from secmon.sim.background import (
    add_address,
    deposit,
    disable,
    enrol,
    habitual_usd,
    login,
    next_snapshot,
    transfer,
    withdrawal,
)
from secmon.sim.core import DAY, HOUR, MINUTE, Account, Device, Sim, Where, iso
from secmon.sim.labels import ScenarioLabel
from secmon.sim.population import cap, new_device
from secmon.sim.world import (
    ATTACK_ISPS,
    BOT_UAS,
    CITIES,
    DEPOSIT_SLA_MIN,
    HOME_CITIES,
    HOME_ISPS,
    HOSTING_CITIES,
    HOSTING_ISPS,
    LOCK_AFTER_FAILURES,
    LOCK_DURATION_MIN,
    LOCK_WINDOW_MIN,
    MOBILE_UAS,
    NETWORKS,
    VALUABLE_LABEL_USD,
    WEAK_MFA_MAX_USD,
    City,
    Isp,
    distance_km,
    new_address,
    otpauth_uri,
    totp_secret,
)

ATTACK_CITY = {"NG": "Lagos", "RU": "Moscow", "BR": "Sao Paulo", "VN": "Hanoi"}
#: Well-known or degenerate TOTP secrets (and why they are weak).
KNOWN_SECRETS = {
    "pyotp_example": "JBSWY3DPEHPK3PXP",  # the pyotp README's example
    "rfc_test_key": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",  # RFC 6238's "12345678901234567890"
    "repeated": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "sequential": "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
}


class Planner:
    """Hands out free accounts and start times; knows the window and the RNG for planning."""

    def __init__(self, sim: Sim, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.free = list(sim.accounts)
        rng.shuffle(self.free)
        span = sim.t_end - sim.t0
        self.warmup = min(DAY, span // 3)
        self._groups = 0

    def take(self, role: str, where: Callable[[Account], bool] | None = None) -> Account:
        for i in range(len(self.free) - 1, -1, -1):
            acct = self.free[i]
            if where is None or where(acct):
                del self.free[i]
                acct.role = role
                return acct
        raise ValueError(f"population too small: no free account left for {role}; use more --accounts")

    def take_many(self, role: str, n: int) -> list[Account]:
        n = min(n, len(self.free))
        taken = self.free[len(self.free) - n :]
        del self.free[len(self.free) - n :]
        for acct in taken:
            acct.role = role
        return taken

    def when(self, start: int | None = None, margin: int = 3 * HOUR) -> int:
        """A time between ``t0 + start`` (default: after the warm-up) and ``t_end - margin``."""
        lo = self.sim.t0 + (self.warmup if start is None else start)
        hi = max(lo + 1, self.sim.t_end - margin)
        return self.rng.randrange(lo, hi)

    def group(self, prefix: str) -> str:
        self._groups += 1
        return f"{prefix}-{self._groups:03d}"

    def attacker(self, hosting: bool | None = None, device: bool = True) -> Where:
        """A fresh attack origin: a hosting provider's IP or a foreign consumer network."""
        rng = self.rng
        if hosting is None:
            hosting = rng.random() < 0.5
        isp = rng.choice(HOSTING_ISPS if hosting else ATTACK_ISPS)
        city = isp_city(isp)
        device_id = self.sim.uid("d-", 40) if device else None
        ua = rng.choice(MOBILE_UAS) if device and rng.random() < 0.6 else rng.choice(BOT_UAS)
        return Where(isp.ip(rng), isp.asn, device_id, ua, city)


def isp_city(isp: Isp) -> City:
    if isp.asn in HOSTING_CITIES:
        return CITIES[HOSTING_CITIES[isp.asn]]
    if isp.country in ATTACK_CITY:
        return CITIES[ATTACK_CITY[isp.country]]
    return HOME_CITIES[isp.country][0]


#: Far-away places a session can appear from: consumer networks, no data centres.
TRAVEL_CITIES = tuple(
    [c for cities in HOME_CITIES.values() for c in cities] + [CITIES[name] for name in ATTACK_CITY.values()]
)


def consumer_isps(country: str) -> list[Isp]:
    if country in ATTACK_CITY:
        return [i for i in ATTACK_ISPS if i.country == country]
    residential, mobile = HOME_ISPS[country]
    return [*residential, *mobile]


def spaced(rng: random.Random, t: int, n: int, lo_ms: int, hi_ms: int) -> list[int]:
    out = []
    for _ in range(n):
        out.append(t)
        t += rng.randint(lo_ms, hi_ms)
    return out


def hammer(
    sim: Sim, acct: Account, times: list[int], where: Where | None, labels: tuple[ScenarioLabel, ...],
    unlock: bool = True,
) -> list[tuple[int, int]]:
    """Bad-password attempts at ``times`` under the platform's lockout policy.

    Ten bad passwords within 15 minutes lock the account for 30; attempts while locked fail
    as ``locked``; the account unlocks by timeout (``unlock``) unless the caller ends the lock
    otherwise.  Returns the locks as ``(locked_at, locked_until)``.
    """
    rng = sim.rng
    recent: list[int] = []
    locks: list[tuple[int, int]] = []
    for t in times:
        if acct.is_locked(t):
            sim.emit(t, "login.failed", acct.id, {"reason": "locked"}, where, labels)
            continue
        sim.emit(t, "login.failed", acct.id, {"reason": "bad_password"}, where, labels)
        recent = [x for x in recent if x > t - LOCK_WINDOW_MIN * MINUTE]
        recent.append(t)
        if len(recent) >= LOCK_AFTER_FAILURES:
            at = t + rng.randint(100, 900)
            until = at + LOCK_DURATION_MIN * MINUTE
            sim.emit(
                at, "account.locked", acct.id,
                {"reason": "too_many_failures", "failed_attempts": len(recent), "locked_until": iso(until)},
                where, labels,
            )  # fmt: skip
            if unlock:
                sim.emit(until, "account.unlocked", acct.id, {"by": "timeout"}, None, labels)
            acct.locks.append((at, until))
            locks.append((at, until))
            recent = []
    return locks


def reset_password(sim: Sim, acct: Account, t: int, where: Where | None, labels: tuple, channel: str = "email",
                   strength: int | None = None, breached: bool = False) -> int:  # fmt: skip
    """Reset flow: request, then the new password a few minutes later; returns its time."""
    rng = sim.rng
    sim.emit(t, "password.reset_requested", acct.id, {"channel": channel}, where, labels)
    t += rng.randint(1, 6) * MINUTE + rng.randrange(MINUTE)
    strength = rng.randint(2, 4) if strength is None else strength
    sim.emit(t, "password.changed", acct.id, {"via": "reset", "strength": strength, "breached": breached}, where, labels)
    return t


def home(sim: Sim, acct: Account, t: int) -> Where:
    """The account's own device at home (never 'in the air': scenarios pick no travellers)."""
    where = acct.home_where(sim.rng, t)
    assert where is not None
    return where


def make_valuable(acct: Account, rng: random.Random, lo: float, hi: float, mfa: list[str] | None = None) -> None:
    acct.capped = False
    acct.balance = rng.uniform(lo, hi)
    acct.amount_mu = math.log(acct.balance / rng.uniform(20.0, 60.0))
    if mfa is not None:
        acct.mfa = list(mfa)


def ensure_holding(acct: Account, rng: random.Random, network: str) -> tuple[str, str]:
    for h in acct.holdings:
        if h[1] == network:
            return h
    holding = (NETWORKS[network].assets[0], network)
    acct.holdings.append(holding)
    acct.book[holding] = [new_address(rng, network)]
    return holding


# ============================================================================ login attacks
def brute_force(p: Planner, variant: str) -> None:
    """One IP hammering one account; ``fast_lockout``, ``slow`` or ``slow_success``."""
    sim, rng = p.sim, p.rng
    acct = p.take("brute_force")
    w = p.attacker()
    group = p.group("bf")
    subject = {"ip": w.ip, "asn": w.asn}
    labels = [sim.label("brute_force", variant, acct, group=group, subject=subject, also=["compromise_suspected"])]
    if variant == "fast_lockout":
        labels.append(sim.label("account_lockout", "after_brute_force", acct, group=group, subject=subject,
                                also=["brute_force"]))  # fmt: skip
    if variant == "slow_success":
        if acct.mfa:
            acct.mfa = []
            cap(acct, rng)
        labels.append(sim.label("compromise_suspected", "after_brute_force", acct, group=group, subject=subject,
                                also=["brute_force", "impossible_travel"]))  # fmt: skip
    ls = tuple(labels)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        if variant == "fast_lockout":
            times = spaced(rng, t, rng.randint(20, 200), 1_000, 6_000)
        else:  # never 10 within 15 minutes
            times = spaced(rng, t, rng.randint(20, 45), 110_000, 240_000)
        hammer(sim, acct, times, w, ls)
        if variant == "slow_success":
            sim.emit(times[-1] + rng.randint(60_000, 200_000), "login.succeeded", acct.id,
                     {"method": "password", "mfa": "none"}, w, ls)  # fmt: skip

    sim.at(acct, p.when(), run)


def account_lockout(p: Planner, variant: str) -> None:
    """A user locked out: ``forgot_password`` (ten tries at home) or ``risk_lock`` (the risk
    engine locks, support unlocks hours later)."""
    sim, rng = p.sim, p.rng
    acct = p.take("account_lockout")
    lab = sim.label("account_lockout", variant, acct, also=["brute_force"] if variant == "forgot_password" else [])
    ls = (lab,)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        if variant == "risk_lock":
            until = t + rng.randint(2, 20) * HOUR
            sim.emit(t, "account.locked", acct.id, {"reason": "risk", "failed_attempts": 0, "locked_until": None},
                     None, ls)  # fmt: skip
            sim.emit(until, "account.unlocked", acct.id, {"by": "support"}, None, ls)
            acct.locks.append((t, until))
            login(sim, acct, until + rng.randint(5, 90) * MINUTE, where, labels=ls)
            return
        times = spaced(rng, t, LOCK_AFTER_FAILURES, 8_000, 30_000)
        reset = rng.random() < 0.6
        (locked_at, until), *_ = hammer(sim, acct, times, where, ls, unlock=not reset)
        if reset:
            t = reset_password(sim, acct, locked_at + rng.randint(2, 20) * MINUTE, where, ls)
            sim.emit(t + 500, "account.unlocked", acct.id, {"by": "password_reset"}, None, ls)
            acct.locks[-1] = (locked_at, t + 500)
            login(sim, acct, t + rng.randint(20_000, 120_000), where, labels=ls)
        else:
            login(sim, acct, until + rng.randint(1, 120) * MINUTE, where, labels=ls)

    sim.at(acct, p.when(), run)


def repeated_lockout(p: Planner, variant: str) -> None:
    """Locked again and again: an ``attacker`` coming back after each unlock, or a
    ``stale_device`` (an old tablet retrying a changed password)."""
    sim, rng = p.sim, p.rng
    acct = p.take("repeated_lockout")
    group = p.group("rl")
    if variant == "attacker":
        w = p.attacker()
        subject: dict[str, Any] = {"ip": w.ip, "asn": w.asn}
    else:
        old = new_device(sim, rng, mobile=False)
        acct.devices.append(old)
        w = Where(acct.home_ip, acct.home_isp.asn, old.id, old.user_agent, acct.city)
        subject = {}
    labels = [
        sim.label("repeated_lockout", variant, acct, group=group, subject=subject, also=["brute_force"]),
        sim.label("account_lockout", f"repeated_{variant}", acct, group=group, subject=subject,
                  also=["brute_force", "repeated_lockout"]),
    ]
    if variant == "attacker":
        labels.append(sim.label("brute_force", "with_repeated_lockout", acct, group=group, subject=subject,
                                also=["account_lockout", "repeated_lockout"]))  # fmt: skip
    ls = tuple(labels)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        for _cycle in range(rng.randint(3, 5) if variant == "attacker" else rng.randint(3, 4)):
            if variant == "attacker":
                times = spaced(rng, t, rng.randint(12, 30), 2_000, 8_000)
            else:
                times = spaced(rng, t, LOCK_AFTER_FAILURES, 5_000, 15_000)
            locks = hammer(sim, acct, times, w, ls)
            until = locks[-1][1] if locks else times[-1]
            t = until + rng.randint(0, 40 if variant == "attacker" else 120) * MINUTE + rng.randrange(MINUTE)
        if variant == "stale_device":
            where = home(sim, acct, t)
            t = reset_password(sim, acct, t, where, ls)
            login(sim, acct, t + rng.randint(20_000, 90_000), where, labels=ls)

    sim.at(acct, p.when(margin=10 * HOUR), run)


def credential_stuffing(p: Planner, variant: str, max_existing: int) -> None:
    """One IP (``single_ip``) or a /24 (``subnet24``) × 50–300 accounts × 1–2 attempts."""
    sim, rng = p.sim, p.rng
    isp = rng.choice(HOSTING_ISPS)
    city = isp_city(isp)
    if variant == "single_ip":
        ips = [isp.ip(rng)]
        subject: dict[str, Any] = {"ip": ips[0], "asn": isp.asn}
    else:
        net = isp.subnet24(rng)
        ips = sorted({f"{net}.{rng.randint(2, 254)}" for _ in range(rng.randint(8, 30))})
        subject = {"network": f"{net}.0/24", "ips": ips, "asn": isp.asn}
    n = rng.randint(50, 300)
    victims = p.take_many("credential_stuffing", min(max_existing, round(n * rng.uniform(0.2, 0.45))))
    targets: list[Account | str] = [*victims, *(sim.uid("w") for _ in range(n - len(victims)))]
    rng.shuffle(targets)
    lab = sim.label("credential_stuffing", variant, None, subject=subject,
                    also=["compromise_suspected", "impossible_travel"]
                    + (["password_spraying"] if variant == "subnet24" else []))  # fmt: skip
    lab.accounts.extend(a.id for a in victims)
    ls = (lab,)
    t0 = p.when(margin=2 * HOUR)
    span = rng.randint(5, 45) * MINUTE
    ua = rng.choice(BOT_UAS)
    for target in targets:
        t = t0 + rng.randrange(span)
        where = Where(rng.choice(ips), isp.asn, None, ua, city)
        if isinstance(target, str):
            for _ in range(rng.randint(1, 2)):
                sim.emit(t, "login.failed", target, {"reason": "unknown_account"}, where, ls)
                t += rng.randint(1_000, 10_000)
            continue
        if rng.random() < 0.02:  # the leaked password still works
            if target.mfa:
                sim.emit(t, "mfa.challenge_failed", target.id, {"method": target.mfa[0]}, where, ls)
                sim.emit(t + 30_000, "login.failed", target.id, {"reason": "bad_mfa"}, where, ls)
            else:
                sim.emit(t, "login.succeeded", target.id, {"method": "password", "mfa": "none"}, where, ls)
            continue
        for _ in range(rng.randint(1, 2)):
            sim.emit(t, "login.failed", target.id, {"reason": "bad_password"}, where, ls)
            t += rng.randint(1_000, 10_000)


def password_spraying(p: Planner, variant: str, max_existing: int) -> None:
    """A few common passwords × 100–400 accounts, slowly, from 20–80 IPs of one ASN."""
    sim, rng = p.sim, p.rng
    isp = rng.choice(HOSTING_ISPS + ATTACK_ISPS)
    city = isp_city(isp)
    ips = sorted({isp.ip(rng) for _ in range(rng.randint(20, 80))})
    n = rng.randint(100, 400)
    victims = p.take_many("password_spraying", min(max_existing, round(n * rng.uniform(0.25, 0.5))))
    targets: list[Account | str] = [*victims, *(sim.uid("w") for _ in range(n - len(victims)))]
    # Seen per ASN, a spraying round is also "one source trying many accounts" (the
    # contract's stuffing, whose subject may be an ASN): a stuffing finding is not wrong here.
    lab = sim.label("password_spraying", variant, None, subject={"asn": isp.asn, "ips": ips},
                    also=["compromise_suspected", "impossible_travel", "credential_stuffing"])  # fmt: skip
    lab.accounts.extend(a.id for a in victims)
    ls = (lab,)
    rounds = rng.randint(1, 3)
    t = p.when(margin=(5 * rounds + 2 * (rounds - 1) + 1) * HOUR)
    ua = rng.choice(BOT_UAS)
    for _ in range(rounds):  # low and slow: each round over hours
        span = rng.randint(120, 300) * MINUTE
        rng.shuffle(targets)
        for target in targets:
            at = t + rng.randrange(span)
            where = Where(rng.choice(ips), isp.asn, None, ua, city)
            if isinstance(target, str):
                sim.emit(at, "login.failed", target, {"reason": "unknown_account"}, where, ls)
            elif not target.mfa and rng.random() < 0.01:
                sim.emit(at, "login.succeeded", target.id, {"method": "password", "mfa": "none"}, where, ls)
            else:
                sim.emit(at, "login.failed", target.id, {"reason": "bad_password"}, where, ls)
        t += span + rng.randint(30, 120) * MINUTE


def compromise_suspected(p: Planner, variant: str) -> None:
    """A success right after an attack on the account: ``after_failures`` (5–9 bad
    passwords, then in) or ``after_lockout`` (locked, waits out the lock, then in)."""
    sim, rng = p.sim, p.rng
    acct = p.take("compromise_suspected")
    sms = rng.random() < 0.5
    acct.mfa = ["sms"] if sms else []
    cap(acct, rng)
    w = p.attacker()
    group = p.group("cs")
    subject = {"ip": w.ip, "asn": w.asn}
    labels = [sim.label("compromise_suspected", variant, acct, group=group, subject=subject,
                        also=["brute_force", "impossible_travel"])]  # fmt: skip
    if variant == "after_lockout":
        labels.append(sim.label("account_lockout", "before_compromise", acct, group=group, subject=subject,
                                also=["brute_force", "compromise_suspected"]))  # fmt: skip
    ls = tuple(labels)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        if variant == "after_failures":
            times = spaced(rng, t, rng.randint(5, 9), 5_000, 60_000)
        else:
            times = spaced(rng, t, rng.randint(10, 14), 2_000, 6_000)
        locks = hammer(sim, acct, times, w, ls)
        t = (locks[-1][1] if locks else times[-1]) + rng.randint(30_000, 600_000)
        sim.emit(t, "login.succeeded", acct.id, {"method": "password", "mfa": "sms" if sms else "none"}, w, ls)
        if sms:  # SIM swapped: the attacker receives the code
            sim.emit(t + rng.randint(10_000, 40_000), "mfa.challenge_succeeded", acct.id, {"method": "sms"}, w, ls)

    sim.at(acct, p.when(), run)


def impossible_travel(p: Planner, variant: str) -> None:
    """A login at home, then one thousands of km away minutes later (``new_device`` or the
    ``known_device`` behind a foreign exit)."""
    sim, rng = p.sim, p.rng
    acct = p.take("impossible_travel")
    lab = sim.label("impossible_travel", variant, acct)
    ls = (lab,)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        t = login(sim, acct, t, where, labels=ls)
        gap_h = rng.uniform(10, 120) / 60
        far = [c for c in TRAVEL_CITIES if distance_km(acct.city, c) >= max(3000.0, 1500.0 * gap_h)]
        city = rng.choice(far)
        isp = rng.choice(consumer_isps(city.country))
        if variant == "known_device":
            device_id, ua = where.device_id, where.user_agent
        else:
            device_id, ua = sim.uid("d-", 40), rng.choice(MOBILE_UAS)
        away = Where(isp.ip(rng), isp.asn, device_id, ua, city)
        lab.subject.update({"ip": away.ip, "asn": isp.asn, "country": city.country})
        login(sim, acct, t + int(gap_h * HOUR), away, labels=ls)

    sim.at(acct, p.when(), run)


# ============================================================================ value
def account_takeover(p: Planner, variant: str) -> None:
    """Suspicious access → credential/2FA/contact change → new address → value leaves.

    Variants by how the attacker gets in: ``no_mfa`` (stolen password), ``sim_swap`` (SMS
    reset), ``recovery_code`` (phished password + a recovery code, then TOTP removed),
    ``support_reset`` (support talked into removing 2FA).
    """
    sim, rng = p.sim, p.rng
    acct = p.take("account_takeover")
    if variant in ("no_mfa", "sim_swap"):
        acct.mfa = [] if variant == "no_mfa" else ["sms"]
        cap(acct, rng)
        acct.balance = rng.uniform(600.0, 0.95 * WEAK_MFA_MAX_USD)
    else:
        make_valuable(acct, rng, 3_000.0, 60_000.0, ["totp"] if variant == "recovery_code" else [rng.choice(("push", "webauthn"))])
    w = p.attacker(hosting=rng.random() < 0.3)
    lab = sim.label(
        "account_takeover", variant, acct, subject={"ip": w.ip, "asn": w.asn},
        also=["compromise_suspected", "impossible_travel", "anomalous_transaction", "mfa_disabled_risk",
              "brute_force", "mfa_weak_posture", "weak_password"],
    )  # fmt: skip
    ls = (lab,)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        acct.quiet_until = t + 3 * HOUR
        if rng.random() < 0.6:
            hammer(sim, acct, spaced(rng, t, rng.randint(1, 6), 10_000, 60_000), w, ls)
            t += 8 * MINUTE
        if variant == "no_mfa":
            sim.emit(t, "login.succeeded", acct.id, {"method": "password", "mfa": "none"}, w, ls)
        elif variant == "sim_swap":
            t = reset_password(sim, acct, t, w, ls, channel="sms", strength=rng.randint(3, 4))
            t += rng.randint(30_000, 180_000)
            sim.emit(t, "login.succeeded", acct.id, {"method": "password", "mfa": "sms"}, w, ls)
            sim.emit(t + rng.randint(10_000, 40_000), "mfa.challenge_succeeded", acct.id, {"method": "sms"}, w, ls)
        elif variant == "recovery_code":
            sim.emit(t, "login.succeeded", acct.id, {"method": "password", "mfa": "totp"}, w, ls)
            sim.emit(t + rng.randint(10_000, 40_000), "recovery_code.used", acct.id, {"remaining": rng.randint(0, 8)}, w, ls)
            t += rng.randint(1, 5) * MINUTE
            disable(sim, acct, t, w, "totp", "settings", ls)
        else:
            disable(sim, acct, t, None, acct.mfa[0], "support", ls)
            t = reset_password(sim, acct, t + rng.randint(2, 10) * MINUTE, w, ls) + rng.randint(30_000, 120_000)
            sim.emit(t, "login.succeeded", acct.id, {"method": "password", "mfa": "none"}, w, ls)
        changes = ["contact_email", "contact_phone", "password", "own_totp"]
        rng.shuffle(changes)
        changes = changes[: rng.randint(1, 3)]
        if "password" in changes or variant in ("sim_swap", "support_reset"):
            acct.lost_password = ls  # the owner's next login fails, then recovers (background.session)
        for change in changes:
            t += rng.randint(1, 8) * MINUTE
            if change == "password":
                sim.emit(t, "password.changed", acct.id, {"via": "settings", "strength": rng.randint(3, 4), "breached": False}, w, ls)
            elif change == "own_totp":
                enrol(sim, acct, t, w, "totp", labels=ls)
            else:
                sim.emit(t, "contact.changed", acct.id, {"field": change.removeprefix("contact_")}, w, ls)
        usd = round(acct.balance * rng.uniform(0.85, 0.98), 2)
        t += rng.randint(1, 10) * MINUTE
        if rng.random() < 0.25:
            tx, t = transfer(sim, acct, t, w, usd=usd, to_account=sim.uid("w"), labels=ls)
        else:
            holding = max(acct.holdings, key=lambda h: h[0] in ("USDT", "BTC", "ETH"))
            address = new_address(rng, holding[1])
            add_address(sim, acct, t, w, address, holding[0], ls)
            tx, t = withdrawal(sim, acct, t + rng.randint(1, 10) * MINUTE, w, usd=usd, holding=holding,
                               address=address, outcome="ok", labels=ls)  # fmt: skip
            lab.subject["address"] = address
        lab.subject["tx_id"] = tx
        lab.tx_ids.append(tx)
        lab.also_until_ms = sim.t_end  # a valuable account may be left without 2FA
        acct.quiet_until = t + 5 * MINUTE  # from here the owner may notice (and recover)

    sim.at(acct, p.when(), run)


def anomalous_transaction(p: Planner, variant: str) -> None:
    """A transaction far outside the account's own habits, by the account's own device:
    ``large_new_address``, ``large_known_address`` or ``drain_transfer`` (most of the
    balance to a stranger, at night)."""
    sim, rng = p.sim, p.rng
    acct = p.take("anomalous_transaction")
    median = rng.uniform(40.0, 400.0)
    acct.amount_mu = math.log(median)
    acct.amount_sigma = rng.uniform(0.35, 0.7)
    acct.wallet_rate = rng.uniform(0.35, 0.5)
    acct.sessions_per_day = max(acct.sessions_per_day, rng.uniform(6.0, 12.0))
    acct.balance = median * rng.uniform(120.0, 300.0)
    if acct.weak_mfa:
        acct.mfa = ["totp"]
    acct.capped = False
    lab = sim.label("anomalous_transaction", variant, acct)
    ls = (lab,)
    span = sim.t_end - sim.t0
    t = p.when(start=int(span * 0.55))
    if variant == "drain_transfer":  # between 02:00 and 05:00 local
        local_day = (t + int(acct.city.utc_offset * HOUR)) // DAY * DAY
        t = local_day - int(acct.city.utc_offset * HOUR) + rng.randrange(2 * HOUR, 5 * HOUR)
        t = min(max(t, sim.t0 + int(span * 0.5)), sim.t_end - HOUR)

    for at in sorted(rng.randrange(sim.t0 + HOUR, t - HOUR) for _ in range(PRIOR_HABITS)):
        sim.at(acct, at, habitual_tx)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        t = login(sim, acct, t, where, labels=ls) + rng.randint(30_000, 240_000)
        if variant == "drain_transfer":
            usd = round(acct.balance * rng.uniform(0.85, 0.97), 2)
            tx, t = transfer(sim, acct, t, where, usd=usd, to_account=sim.uid("w"), labels=ls)
        else:
            usd = round(min(median * rng.uniform(25.0, 120.0), acct.balance * 0.9), 2)
            holding = rng.choice(acct.holdings)
            address = None if variant == "large_new_address" else rng.choice(acct.book[holding])
            if address is None:
                address = new_address(rng, holding[1])
                add_address(sim, acct, t, where, address, holding[0], ls)
                t += rng.randint(30_000, 300_000)
            tx, t = withdrawal(sim, acct, t, where, usd=usd, holding=holding, address=address, outcome="ok", labels=ls)
        lab.subject["tx_id"] = tx
        lab.tx_ids.append(tx)
        acct.quiet_until = t + HOUR

    sim.at(acct, t, run)


#: Habitual outgoing transactions every anomalous-transaction account makes before the
#: anomaly (on top of its background), so that each has a baseline to deviate from.
PRIOR_HABITS = 5


def habitual_tx(sim: Sim, acct: Account, t: int, _: Any) -> None:
    where = home(sim, acct, t)
    t = login(sim, acct, t, where) + sim.rng.randint(20_000, 200_000)
    holding = sim.rng.choice(acct.holdings)
    if acct.friends and sim.rng.random() < 0.3:
        transfer(sim, acct, t, where)
    else:
        withdrawal(sim, acct, t, where, holding=holding, address=sim.rng.choice(acct.book[holding]))


def deposit_delayed(p: Planner, variant: str) -> None:
    """A deposit credited ``late`` (50 min – 6 h) or ``stuck`` (not credited in the run)."""
    sim, rng = p.sim, p.rng
    acct = p.take("deposit_delayed")
    holding = ensure_holding(acct, rng, rng.choice(("BTC", "ETH", "TRON", "bank")))
    lab = sim.label("deposit_delayed", variant, acct, subject={"network": holding[1]})
    ls = (lab,)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        delay = rng.randint(50, 360) * MINUTE + rng.randrange(MINUTE) if variant == "late" else -1
        usd = habitual_usd(sim, acct)
        tx, t = deposit(sim, acct, t, where, usd=usd, holding=holding, delay_ms=delay, labels=ls)
        lab.subject["tx_id"] = tx
        lab.tx_ids.append(tx)
        lab.anchor_ms = t + DEPOSIT_SLA_MIN * MINUTE
        if variant == "stuck":
            lab.end_ms = sim.t_end

    sim.at(acct, p.when(margin=5 * HOUR), run)


def withdrawal_failures(p: Planner, variant: str) -> None:
    """One account failing again and again (3–7 times within the hour), with one reason."""
    sim, rng = p.sim, p.rng
    acct = p.take("withdrawal_failures")
    holding = ensure_holding(acct, rng, "bank") if variant in ("account_mismatch", "bank_rejected") else None
    lab = sim.label("withdrawal_failures", variant, acct, subject={"reason": variant})
    ls = (lab,)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        t = login(sim, acct, t, where, labels=ls)
        usd = habitual_usd(sim, acct) * (2.0 if variant == "limit_exceeded" else 1.0)
        for _ in range(rng.randint(3, 7)):
            t += rng.randint(1, 10) * MINUTE
            tx, t = withdrawal(sim, acct, t, where, usd=round(usd, 2), holding=holding, outcome=variant, labels=ls)
            lab.tx_ids.append(tx)
        if rng.random() < 0.4:
            tx, _ = withdrawal(sim, acct, t + rng.randint(3, 20) * MINUTE, where, usd=round(usd * 0.5, 2),
                               holding=holding, outcome="ok", labels=ls)  # fmt: skip
            lab.tx_ids.append(tx)

    sim.at(acct, p.when(), run)


OUTAGES = (("bank", "bank_rejected"), ("ETH", "chain_error"), ("TRON", "chain_error"), ("BTC", "chain_error"))


def withdrawal_outage(p: Planner, index: int, max_accounts: int) -> None:
    """30–80 accounts' withdrawals failing on one network within minutes (a platform
    incident); background withdrawals on that network fail too while it lasts."""
    sim, rng = p.sim, p.rng
    network, reason = OUTAGES[index % len(OUTAGES)]
    accounts = p.take_many("withdrawal_outage", rng.randint(30, max(30, max_accounts)))
    lab = sim.label("withdrawal_outage", network, None, subject={"network": network, "reason": reason},
                    also=["withdrawal_failures"])  # fmt: skip
    lab.accounts.extend(a.id for a in accounts)
    start = p.when(margin=4 * HOUR)
    end = start + rng.randint(5, 20) * MINUTE
    sim.outages.append((network, start, end, reason, lab))
    for acct in accounts:
        holding = ensure_holding(acct, rng, network)

        def run(sim: Sim, acct: Account, t: int, holding: tuple[str, str]) -> None:
            where = home(sim, acct, t)
            usd = min(habitual_usd(sim, acct), round(acct.balance * 0.5, 2))
            tries = 1 + (rng.random() < 0.25) + (rng.random() < 0.1)
            for _ in range(tries):
                tx, t = withdrawal(sim, acct, t, where, usd=max(usd, 5.0), holding=holding, labels=(lab,))
                lab.tx_ids.append(tx)
                t += rng.randint(1, 5) * MINUTE

        sim.at(acct, rng.randrange(start, end), run, holding)


# ============================================================================ 2FA and passwords
def mfa_weak_posture(p: Planner, variant: str) -> None:
    """A valuable account with no 2FA or only SMS/e-mail; ``became_valuable``: a small one
    that receives a large deposit (seen on the next daily snapshot)."""
    sim, rng = p.sim, p.rng
    acct = p.take("mfa_weak_posture")
    mfa = {"none": [], "sms_only": ["sms"], "email_only": ["email"], "sms_email": ["sms", "email"]}
    if variant == "became_valuable" and sim.days < 2:  # no later daily snapshot would show it
        variant = "sms_only"
    lab = sim.label("mfa_weak_posture", variant, acct)
    lab.end_ms = sim.t_end
    if variant != "became_valuable":
        make_valuable(acct, rng, VALUABLE_LABEL_USD, 400_000.0, mfa[variant])
        lab.start_ms = lab.anchor_ms = next_snapshot(sim, acct, sim.t0)
        return
    acct.mfa = rng.choice(list(mfa.values()))
    cap(acct, rng)
    lab.subject["mfa"] = list(acct.mfa)
    t = p.when(margin=int(1.3 * DAY))

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        t = login(sim, acct, t, where, labels=(lab,)) + rng.randint(30_000, 300_000)
        acct.capped = False
        usd = round(rng.uniform(VALUABLE_LABEL_USD * 1.2, 150_000.0), 2)
        tx, t = deposit(sim, acct, t, where, usd=usd, holding=("USD", "bank") if ("USD", "bank") in acct.holdings else None,
                        delay_ms=rng.randint(3, 15) * MINUTE, labels=(lab,))  # fmt: skip
        lab.tx_ids.append(tx)
        lab.anchor_ms = next_snapshot(sim, acct, t + 15 * MINUTE)
        lab.end_ms = sim.t_end

    sim.at(acct, t, run)


def weak_secret_uri(sim: Sim, account_id: str, variant: str) -> str:
    rng = sim.rng
    if variant in KNOWN_SECRETS:
        return otpauth_uri(account_id, KNOWN_SECRETS[variant])
    if variant == "short":
        return otpauth_uri(account_id, totp_secret(rng, rng.choice((40, 80))))
    if variant == "digits4":
        return otpauth_uri(account_id, totp_secret(rng), "&digits=4")
    return otpauth_uri(account_id, totp_secret(rng), "&period=120")  # period120


WEAK_SECRET_VARIANTS = ("short", "pyotp_example", "rfc_test_key", "repeated", "sequential", "digits4", "period120")


def mfa_weak_secret(p: Planner, variant: str) -> None:
    """A TOTP enrolment with a weak secret or odd parameters, from the user's own device."""
    sim, rng = p.sim, p.rng
    acct = p.take("mfa_weak_secret", lambda a: "totp" not in a.mfa)
    shared = variant in KNOWN_SECRETS
    lab = sim.label("mfa_weak_secret", variant, acct, subject={"reason": variant},
                    also=["mfa_secret_reuse"] if shared else [])  # fmt: skip

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        t = login(sim, acct, t, where, labels=(lab,)) + rng.randint(20_000, 200_000)
        enrol(sim, acct, t, where, "totp", weak_secret_uri(sim, acct.id, variant), labels=(lab,))

    sim.at(acct, p.when(), run)


def mfa_secret_reuse(p: Planner, variant: str) -> None:
    """One (strong-looking) TOTP secret enrolled on 2–3 accounts: a ``farm`` (one device and
    IP, within the hour) or a ``household`` (each on its own phone, hours apart)."""
    sim, rng = p.sim, p.rng
    accounts = [p.take("mfa_secret_reuse", lambda a: "totp" not in a.mfa) for _ in range(rng.randint(2, 3))]
    secret = totp_secret(rng)
    lab = sim.label("mfa_secret_reuse", variant, None)
    lab.accounts.extend(a.id for a in accounts)
    farm = p.attacker(hosting=True) if variant == "farm" else None
    if farm is not None:  # accounts run by a farm live there: one data-centre IP and device
        isp = next(i for i in HOSTING_ISPS if i.asn == farm.asn)
        device = Device(farm.device_id or sim.uid("d-", 40), farm.user_agent or BOT_UAS[0], mobile=False)
        for acct in accounts:
            acct.city, acct.home_isp, acct.mobile_isp = isp_city(isp), isp, isp
            acct.home_ip, acct.mobile_ips, acct.devices = farm.ip or isp.ip(rng), [farm.ip or ""], [device]
    t = p.when()
    for acct in accounts:

        def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
            where = farm or home(sim, acct, t)
            t = login(sim, acct, t, where, labels=(lab,)) + rng.randint(20_000, 120_000)
            enrol(sim, acct, t, where, "totp", otpauth_uri(acct.id, secret), labels=(lab,))

        sim.at(acct, t, run)
        t += rng.randint(3, 20) * MINUTE if farm else rng.randint(1, 20) * HOUR
        t = min(t, sim.t_end - HOUR)


def mfa_bruteforce(p: Planner, variant: str) -> None:
    """Someone with the password guessing the second factor: ``totp_guessing`` (10–60
    codes), ``push_fatigue`` (10–30 pushes declined) or ``push_fatigue_accepted``."""
    sim, rng = p.sim, p.rng
    acct = p.take("mfa_bruteforce")
    method = "totp" if variant == "totp_guessing" else "push"
    acct.mfa = [method] + [m for m in acct.mfa if m != method]
    acct.capped = False
    w = p.attacker()
    group = p.group("mb")
    subject = {"ip": w.ip, "asn": w.asn}
    labels = [sim.label("mfa_bruteforce", variant, acct, group=group, subject=subject,
                        also=["brute_force", "compromise_suspected", "impossible_travel"])]  # fmt: skip
    if variant == "push_fatigue_accepted":
        labels.append(sim.label("compromise_suspected", "after_push_fatigue", acct, group=group, subject=subject,
                                also=["mfa_bruteforce", "brute_force", "impossible_travel"]))  # fmt: skip
    ls = tuple(labels)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        total = rng.randint(10, 60) if method == "totp" else rng.randint(10, 30)
        done = 0
        while done < total:
            burst = min(total - done, rng.randint(3, 5) if method == "totp" else rng.randint(1, 3))
            for _ in range(burst):
                sim.emit(t, "mfa.challenge_failed", acct.id, {"method": method}, w, ls)
                t += rng.randint(8_000, 40_000) if method == "totp" else rng.randint(30_000, 90_000)
            sim.emit(t, "login.failed", acct.id, {"reason": "bad_mfa"}, w, ls)
            done += burst
            t += rng.randint(30_000, 180_000) if method == "totp" else rng.randint(60_000, 300_000)
        if variant == "push_fatigue_accepted":
            sim.emit(t, "mfa.challenge_succeeded", acct.id, {"method": "push"}, w, ls)
            sim.emit(t + rng.randint(500, 3_000), "login.succeeded", acct.id, {"method": "password", "mfa": "push"}, w, ls)

    sim.at(acct, p.when(), run)


def mfa_disabled_risk(p: Planner, variant: str) -> None:
    """2FA removed on a valuable account (``valuable_disabled``), or removed through support
    shortly before much of the balance leaves (``disabled_before_withdrawal``)."""
    sim, rng = p.sim, p.rng
    acct = p.take("mfa_disabled_risk")
    method = rng.choice(("totp", "webauthn", "push"))
    if variant == "valuable_disabled":
        make_valuable(acct, rng, VALUABLE_LABEL_USD, 400_000.0, [method])
    else:
        make_valuable(acct, rng, 3_000.0, 50_000.0, [method])
    lab = sim.label("mfa_disabled_risk", variant, acct, also=["mfa_weak_posture", "anomalous_transaction"])
    lab.also_until_ms = sim.t_end

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        t = login(sim, acct, t, where, labels=(lab,)) + rng.randint(30_000, 300_000)
        if variant == "valuable_disabled":
            disable(sim, acct, t, where, method, "settings", (lab,))
            return
        disable(sim, acct, t, None, method, "support", (lab,))
        acct.quiet_until = t + 3 * HOUR
        t += rng.randint(10, 60) * MINUTE
        t = login(sim, acct, t, where, labels=(lab,)) + rng.randint(30_000, 200_000)
        usd = round(acct.balance * rng.uniform(0.5, 0.9), 2)
        tx, _ = withdrawal(sim, acct, t, where, usd=usd, outcome="ok", labels=(lab,))
        lab.tx_ids.append(tx)

    sim.at(acct, p.when(), run)


def weak_password(p: Planner, variant: str) -> None:
    """A password set that is ``breached`` or ``very_weak`` (strength ≤ 1), in settings or
    through a reset (``breached_reset``)."""
    sim, rng = p.sim, p.rng
    acct = p.take("weak_password")
    lab = sim.label("weak_password", variant, acct)
    ls = (lab,)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        breached = variant != "very_weak"
        strength = rng.randint(1, 3) if breached else rng.randint(0, 1)
        if variant == "breached_reset":
            reset_password(sim, acct, t, where, ls, strength=strength, breached=True)
            return
        t = login(sim, acct, t, where, labels=ls) + rng.randint(30_000, 600_000)
        sim.emit(t, "password.changed", acct.id, {"via": "settings", "strength": strength, "breached": breached}, where, ls)

    sim.at(acct, p.when(), run)
