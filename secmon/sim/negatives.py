"""Hard negatives: legitimate traffic that looks like an attack to a naive rule.

Each is labelled with the kinds it must not raise (``must_not``), so ``secmon eval`` can say
which detector fell for which look-alike:

* ``carrier_nat``: one carrier-grade NAT address shared by ~300 phones in one city, each
  user with a few typos over the days and mostly successful logins;
* ``traveller``: a flight to another continent, logins before departure and after arrival,
  and two days of life there;
* ``whale``: very large, habitual withdrawals, always to known addresses
  (``whale_totp``: the whales whose only 2FA is TOTP, which is not weak);
* ``slow_credit``: deposits credited after 25–29.5 minutes, inside the 30-minute SLA;
* ``mistyper``: one to four wrong passwords, then in;
* ``withdrawal_retry``: two failed withdrawals, then a success;
* ``password_change_only``: a password change (strong) and no money moving for a day;
* ``first_withdrawal``: a new account's first deposit and first withdrawal (no history);
* ``mfa_swap``: a valuable account replacing one strong method by another.
"""

from __future__ import annotations

import math
from typing import Any

from secmon.sim.background import deposit, disable, enrol, login, withdrawal
from secmon.sim.core import DAY, HOUR, MINUTE, Account, Sim, Trip
from secmon.sim.population import cap, new_device
from secmon.sim.scenarios import Planner, ensure_holding, home, make_valuable, spaced
from secmon.sim.world import (
    CITIES,
    HOME_CITIES,
    HOME_ISPS,
    NAT_ISP,
    VALUABLE_LABEL_USD,
    distance_km,
    new_address,
)

AUTH_ATTACKS = ["credential_stuffing", "password_spraying", "brute_force", "compromise_suspected"]


def carrier_nat(p: Planner, n: int) -> None:
    sim, rng = p.sim, p.rng
    nat_ip = NAT_ISP.ip(rng)
    city = CITIES["Shanghai"]
    accounts = p.take_many("carrier_nat", n)
    neg = sim.negative("carrier_nat", [*AUTH_ATTACKS, "account_lockout"], ip=nat_ip, asn=NAT_ISP.asn)
    for acct in accounts:
        acct.city = city
        acct.locale = "zh-CN"
        acct.home_isp = HOME_ISPS["CN"][0][0]
        acct.mobile_isp = NAT_ISP
        acct.nat_ip = nat_ip
        acct.typo_rate = rng.uniform(0.05, 0.15)  # a few typos each over the run
        if not acct.devices[0].mobile:
            acct.devices.insert(0, new_device(sim, rng, mobile=True))
        neg.account_ids.append(acct.id)
    neg.start_ms, neg.end_ms = sim.t0, sim.t_end


def traveller(p: Planner) -> None:
    sim, rng = p.sim, p.rng
    acct = p.take("traveller", lambda a: a.devices[0].mobile)
    far = [c for c in _home_cities() if distance_km(acct.city, c) >= 3000.0]
    dest = rng.choice(far)
    isp = rng.choice(HOME_ISPS[dest.country][0])
    depart = p.when(start=int(0.3 * DAY), margin=int(1.6 * DAY))
    flight_h = distance_km(acct.city, dest) / 850.0 + 1.0
    arrive = depart + int(flight_h * HOUR)
    acct.trip = Trip(depart, arrive, dest, isp, isp.ip(rng))
    neg = sim.negative("traveller", ["impossible_travel", "account_takeover", "compromise_suspected"],
                       to_country=dest.country, ip=acct.trip.ip)  # fmt: skip
    neg.account_ids.append(acct.id)
    neg.start_ms, neg.end_ms = depart - 12 * HOUR, sim.t_end

    def hello(sim: Sim, acct: Account, t: int, _: Any) -> None:
        login(sim, acct, t, home(sim, acct, t))  # where it is at t: home, then the destination

    sim.at(acct, depart - rng.randint(30, 120) * MINUTE, hello)
    sim.at(acct, arrive + rng.randint(20, 120) * MINUTE, hello)


def whale(p: Planner) -> None:
    sim, rng = p.sim, p.rng
    acct = p.take("whale", lambda a: a.created_ms < sim.t0)
    totp_only = rng.random() < 0.5
    make_valuable(acct, rng, 2e6, 1e7, ["totp"] if totp_only else [rng.choice(("webauthn", "push")), "totp"])
    acct.amount_mu = math.log(rng.uniform(40_000.0, 150_000.0))
    acct.amount_sigma = rng.uniform(0.3, 0.55)
    acct.wallet_rate = rng.uniform(0.35, 0.5)
    acct.known_only = True
    acct.holdings = [("BTC", "BTC"), ("USDT", "ETH")]
    acct.book = {h: [new_address(rng, h[1]) for _ in range(rng.randint(1, 2))] for h in acct.holdings}
    neg = sim.negative("whale", ["anomalous_transaction", "account_takeover"])
    neg.account_ids.append(acct.id)
    neg.start_ms, neg.end_ms = sim.t0, sim.t_end
    if totp_only:
        pos = sim.negative("whale_totp", ["mfa_weak_posture"])
        pos.account_ids.append(acct.id)
        pos.start_ms, pos.end_ms = sim.t0, sim.t_end


def slow_credit(p: Planner) -> None:
    sim, rng = p.sim, p.rng
    acct = p.take("slow_credit")
    holding = ensure_holding(acct, rng, rng.choice(("BTC", "bank")))
    neg = sim.negative("slow_credit", ["deposit_delayed"])
    neg.account_ids.append(acct.id)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        delay = rng.randint(25 * MINUTE, int(29.5 * MINUTE))
        tx, t = deposit(sim, acct, t, home(sim, acct, t), holding=holding, delay_ms=delay)
        neg.tx_ids.append(tx)
        neg.span(t)
        neg.span(t + delay)

    sim.at(acct, p.when(start=0), run)


def mistyper(p: Planner) -> None:
    sim, rng = p.sim, p.rng
    acct = p.take("mistyper")
    neg = sim.negative("mistyper", ["brute_force", "compromise_suspected", "account_lockout"])
    neg.account_ids.append(acct.id)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        times = spaced(rng, t, rng.randint(1, 4), 5_000, 30_000)
        for at in times:
            sim.emit(at, "login.failed", acct.id, {"reason": "bad_password"}, where)
        done = login(sim, acct, times[-1] + rng.randint(5_000, 30_000), where)
        neg.span(t)
        neg.span(done)

    sim.at(acct, p.when(start=0), run)


def withdrawal_retry(p: Planner) -> None:
    sim, rng = p.sim, p.rng
    acct = p.take("withdrawal_retry")
    neg = sim.negative("withdrawal_retry", ["withdrawal_failures"])
    neg.account_ids.append(acct.id)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        reason = rng.choice(("limit_exceeded", "insufficient_funds", "risk_hold"))
        holding = rng.choice(acct.holdings)
        usd = min(round(math.exp(acct.amount_mu), 2), round(acct.balance * 0.4, 2))
        for _ in range(2):
            tx, t = withdrawal(sim, acct, t, where, usd=max(usd, 5.0), holding=holding, outcome=reason)
            neg.tx_ids.append(tx)
            neg.span(t)
            t += rng.randint(1, 8) * MINUTE
        tx, t = withdrawal(sim, acct, t + rng.randint(1, 15) * MINUTE, where, usd=max(usd * 0.5, 3.0), holding=holding,
                           outcome="ok")  # fmt: skip
        neg.tx_ids.append(tx)
        neg.span(t)

    sim.at(acct, p.when(start=0), run)


def password_change_only(p: Planner) -> None:
    sim, rng = p.sim, p.rng
    acct = p.take("password_change_only")
    neg = sim.negative("password_change_only", ["account_takeover", "weak_password", "compromise_suspected"])
    neg.account_ids.append(acct.id)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        t = login(sim, acct, t, where) + rng.randint(30_000, 300_000)
        sim.emit(t, "password.changed", acct.id, {"via": "settings", "strength": rng.randint(3, 4), "breached": False}, where)
        acct.quiet_until = t + DAY
        neg.span(t)
        neg.span(t + DAY)

    sim.at(acct, p.when(start=0, margin=DAY // 2), run)


def first_withdrawal(p: Planner) -> None:
    """A sign-up inside the window: snapshot at creation, first deposit, first withdrawal.

    Must run before the habits are planned (they start at ``created_ms``)."""
    sim, rng = p.sim, p.rng
    acct = p.take("first_withdrawal")
    acct.created_ms = p.when(start=2 * HOUR, margin=int(0.9 * DAY))
    acct.balance = 0.0
    strong = rng.random() < 0.5
    acct.mfa = []
    if strong:
        acct.capped = False
    else:
        cap(acct, rng)
    neg = sim.negative("first_withdrawal", ["anomalous_transaction", "account_takeover"])
    neg.account_ids.append(acct.id)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        sim.snapshot(acct, t)
        t = login(sim, acct, t + rng.randint(1, 5) * MINUTE, where)
        if strong:
            t += rng.randint(1, 4) * MINUTE
            enrol(sim, acct, t, where, "totp")
        usd = round(rng.uniform(200.0, 5_000.0 if strong else 1_200.0), 2)
        holding = rng.choice(acct.holdings)
        deposit(sim, acct, t + rng.randint(2, 30) * MINUTE, where, usd=usd, holding=holding)
        out = t + rng.randint(2, 18) * HOUR
        acct.quiet_until = out
        sim.at(acct, out, first_out, holding)
        neg.span(t)

    def first_out(sim: Sim, acct: Account, t: int, holding: tuple[str, str]) -> None:
        where = home(sim, acct, t)
        t = login(sim, acct, t, where) + rng.randint(30_000, 200_000)
        usd = round(acct.balance * rng.uniform(0.3, 0.8), 2)
        tx, t = withdrawal(sim, acct, t, where, usd=usd, holding=holding, outcome="ok")
        neg.tx_ids.append(tx)
        neg.span(t)

    sim.at(acct, acct.created_ms, run)


def mfa_swap(p: Planner) -> None:
    sim, rng = p.sim, p.rng
    acct = p.take("mfa_swap")
    old = rng.choice(("totp", "push"))
    make_valuable(acct, rng, VALUABLE_LABEL_USD * 1.2, 300_000.0, [old])
    neg = sim.negative("mfa_swap", ["mfa_disabled_risk", "mfa_weak_posture"])
    neg.account_ids.append(acct.id)

    def run(sim: Sim, acct: Account, t: int, _: Any) -> None:
        where = home(sim, acct, t)
        t = login(sim, acct, t, where) + rng.randint(30_000, 200_000)
        enrol(sim, acct, t, where, "webauthn")
        t += rng.randint(2, 30) * MINUTE
        disable(sim, acct, t, where, old, "settings")
        neg.span(t)

    sim.at(acct, p.when(start=0), run)


def _home_cities() -> list[Any]:
    return [c for cities in HOME_CITIES.values() for c in cities]
