"""The population: accounts with their own habits, drawn from the seeded RNG.

Habits are per account and stay fixed for the run: home city (and so time zone and
locale), home broadband and mobile carrier, one to three devices, a diurnal peak hour,
sessions per day, a typo rate, the assets they hold, a lognormal amount profile
(``amount_mu`` is the log of the median USD amount, ``amount_sigma`` its spread), an
address book per asset, a few friends to transfer to, and their 2FA methods.

One rule is imposed on everybody who is not part of a labelled scenario: accounts whose
2FA is weak (none, SMS or e-mail only) are small (``capped``: kept under
``world.WEAK_MFA_MAX_USD``), so that ``mfa_weak_posture`` is a labelled property, not an
accident of the draw.  Scenarios then adjust the accounts they take (a whale, a valuable
account with SMS only, a traveller).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar

from secmon.sim.core import DAY, Account, Device, Sim
from secmon.sim.world import (
    HOLDINGS,
    HOME_CITIES,
    HOME_COUNTRIES,
    HOME_ISPS,
    MOBILE_UAS,
    WEAK_MFA_MAX_USD,
    WEB_UAS,
    ZH_SHARE,
    new_address,
)

#: 2FA set-ups of the population and their shares.
MFA_MIX: tuple[tuple[list[str], float], ...] = (
    ([], 0.22), (["sms"], 0.18), (["email"], 0.05), (["sms", "email"], 0.03), (["totp"], 0.22),
    (["webauthn"], 0.08), (["push"], 0.12), (["totp", "sms"], 0.07), (["webauthn", "totp"], 0.03),
)  # fmt: skip
CAPPED_MAX_USD = 0.75 * WEAK_MFA_MAX_USD
T = TypeVar("T")


def weighted(rng: random.Random, options: Sequence[tuple[T, float]]) -> T:
    r = rng.random() * sum(w for _, w in options)
    for value, weight in options:
        r -= weight
        if r <= 0:
            return value
    return options[-1][0]


def build_population(sim: Sim, n: int, rng: random.Random) -> list[Account]:
    accounts = [_account(sim, idx, rng) for idx in range(n)]
    ids = [a.id for a in accounts]
    for acct in accounts:
        acct.friends = [f for f in rng.sample(ids, min(len(ids), rng.randint(1, 4))) if f != acct.id]
    sim.accounts = accounts
    sim.by_id = {a.id: a for a in accounts}
    return accounts


def new_device(sim: Sim, rng: random.Random, mobile: bool) -> Device:
    return Device(sim.uid("d-", 40), rng.choice(MOBILE_UAS if mobile else WEB_UAS), mobile)


def _account(sim: Sim, idx: int, rng: random.Random) -> Account:
    country = weighted(rng, HOME_COUNTRIES)
    city = rng.choice(HOME_CITIES[country])
    locale = "zh-CN" if rng.random() < ZH_SHARE.get(country, 0.05) else "en"
    residential, mobile = HOME_ISPS[country]
    home_isp, mobile_isp = rng.choice(residential), rng.choice(mobile)
    devices = [new_device(sim, rng, rng.random() < 0.85)]
    for share in (0.4, 0.1):
        if rng.random() < share:
            devices.append(new_device(sim, rng, rng.random() < 0.5))
    holdings: list[tuple[str, str]] = []
    for _ in range(1 + (rng.random() < 0.45) + (rng.random() < 0.15)):
        h = weighted(rng, HOLDINGS)
        if h not in holdings:
            holdings.append(h)
    book = {h: [new_address(rng, h[1]) for _ in range(rng.randint(1, 3))] for h in holdings}
    mfa = list(weighted(rng, MFA_MIX))
    amount_mu = rng.gauss(math.log(120), 1.0)
    acct = Account(
        idx=idx,
        id=sim.uid("w"),
        city=city,
        locale=locale,
        created_ms=sim.t0 - rng.randint(20, 1500) * DAY - rng.randrange(DAY),
        home_isp=home_isp,
        mobile_isp=mobile_isp,
        home_ip=home_isp.ip(rng),
        mobile_ips=[mobile_isp.ip(rng) for _ in range(rng.randint(1, 2))],
        devices=devices,
        peak_local_h=min(23.5, max(8.0, rng.gauss(20.5, 2.2))),
        sessions_per_day=min(40.0, max(0.3, rng.lognormvariate(math.log(11.0), 0.7))),
        typo_rate=min(0.15, rng.betavariate(1.5, 30)),
        wallet_rate=rng.uniform(0.04, 0.2),
        mfa=mfa,
        email_verified=rng.random() < 0.92,
        phone_verified="sms" in mfa or rng.random() < 0.6,
        balance=math.exp(amount_mu) * rng.lognormvariate(math.log(15), 0.7),
        amount_mu=amount_mu,
        amount_sigma=rng.uniform(0.4, 0.9),
        holdings=holdings,
        book=book,
    )
    if acct.weak_mfa:
        cap(acct, rng)
    return acct


def cap(acct: Account, rng: random.Random) -> None:
    """Make a weak-2FA account small (the population rule, see the module docstring)."""
    acct.capped = True
    acct.balance = min(acct.balance, rng.uniform(150.0, CAPPED_MAX_USD))
    acct.amount_mu = min(acct.amount_mu, math.log(60))
