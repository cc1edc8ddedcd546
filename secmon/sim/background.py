"""Normal traffic: what every account does by habit, day after day.

Per account and day: a Poisson number of sessions around the account's local peak hour (a
quarter of them anywhere in waking hours); a session is a login (sometimes after a typo or
two), an MFA challenge when the account has 2FA and did not log in biometrically, and with
the account's ``wallet_rate`` a deposit (initiated, credited within the network's normal
time), a withdrawal (to an address-book entry, now and then to a freshly added address;
completed, or rarely failed for a legitimate reason) or a transfer to a friend.  The account
service writes a snapshot of every account once a day, and again after each 2FA change.
Rare habits: a password change, a new 2FA method (TOTP with a fresh 160-bit secret), a
method swap.  A little noise: logins with mistyped user names (``unknown_account``) from
ordinary home connections.
"""

from __future__ import annotations

import math
import random
from typing import Any

from secmon.sim.core import DAY, HOUR, MINUTE, Account, Sim, Where
from secmon.sim.population import CAPPED_MAX_USD, weighted
from secmon.sim.world import (
    HOME_CITIES,
    HOME_COUNTRIES,
    HOME_ISPS,
    NETWORKS,
    asset_amount,
    new_address,
    otpauth_uri,
    totp_secret,
)

#: Legitimate one-off withdrawal failures and their shares.
FAILURE_REASONS = (
    ("insufficient_funds", 0.35), ("limit_exceeded", 0.3), ("account_mismatch", 0.2), ("risk_hold", 0.1),
    ("chain_error", 0.05),
)  # fmt: skip
WITHDRAWAL_FAILURE_RATE = 0.012


def poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def snapshot_time(sim: Sim, acct: Account, day: int) -> int:
    """The daily snapshot batch writes account ``idx`` at a fixed minute after midnight UTC."""
    return sim.t0 + day * DAY + (acct.idx * 7919) % (30 * MINUTE)


def next_snapshot(sim: Sim, acct: Account, t: int) -> int:
    """The first daily snapshot of ``acct`` at or after ``t``."""
    day = max(0, (t - sim.t0) // DAY)
    ts = snapshot_time(sim, acct, day)
    return ts if ts >= t else snapshot_time(sim, acct, day + 1)


def plan_background(sim: Sim, acct: Account, rng: random.Random) -> None:
    """Put a run's worth of habitual steps into the account's agenda."""
    offset = acct.city.utc_offset
    for day in range(sim.days):
        start = sim.t0 + day * DAY
        snap = snapshot_time(sim, acct, day)
        if snap >= acct.created_ms:
            sim.at(acct, snap, daily_snapshot)
        for _ in range(poisson(rng, acct.sessions_per_day)):
            local = rng.gauss(acct.peak_local_h, 2.0) if rng.random() < 0.75 else rng.uniform(7.0, 24.0)
            ts = start + int(((local - offset) % 24.0) * HOUR) + rng.randrange(MINUTE)
            if acct.created_ms < ts < sim.t_end:
                sim.at(acct, ts, session)
        if rng.random() < 0.004:
            sim.at(acct, start + rng.randrange(DAY), password_change)
        if rng.random() < 0.003:
            sim.at(acct, start + rng.randrange(DAY), enrol_method)


def plan_noise(sim: Sim, n_accounts: int, rng: random.Random) -> None:
    """Mistyped user names: ``login.failed unknown_account`` from ordinary connections."""
    countries = tuple(c for c, _ in HOME_COUNTRIES)
    for _ in range(int(n_accounts * sim.days * 0.03)):
        country = rng.choice(countries)
        isp = rng.choice(HOME_ISPS[country][rng.random() < 0.5])
        where = Where(isp.ip(rng), isp.asn, None, None, rng.choice(HOME_CITIES[country]))
        ts = sim.t0 + rng.randrange(sim.t_end - sim.t0)
        sim.emit(ts, "login.failed", sim.uid("w"), {"reason": "unknown_account"}, where)


# ---------------------------------------------------------------------------- steps
def daily_snapshot(sim: Sim, acct: Account, ts: int, _: Any) -> None:
    sim.snapshot(acct, ts)


def session(sim: Sim, acct: Account, ts: int, _: Any) -> None:
    rng = sim.rng
    where = acct.home_where(rng, ts)
    if where is None:  # in the air
        return
    if acct.locks and acct.is_locked(ts):
        sim.emit(ts, "login.failed", acct.id, {"reason": "locked"}, where)
        return
    if acct.lost_password and ts >= acct.quiet_until:
        recover(sim, acct, ts, where)
        return
    t = login(sim, acct, ts, where, typos=acct.typo_rate)
    if ts >= acct.quiet_until and rng.random() < acct.wallet_rate:
        wallet_action(sim, acct, t + rng.randint(20_000, 300_000), where)


def recover(sim: Sim, acct: Account, ts: int, where: Where) -> None:
    """The owner of a taken-over account: the old password fails, a reset through support
    (the attacker may have changed e-mail and phone) gives the account back."""
    rng, labels = sim.rng, acct.lost_password
    acct.lost_password = ()
    t = ts
    for _ in range(rng.randint(2, 3)):
        sim.emit(t, "login.failed", acct.id, {"reason": "bad_password"}, where, labels)
        t += rng.randint(5_000, 40_000)
    sim.emit(t, "password.reset_requested", acct.id, {"channel": "email"}, where, labels)
    t += rng.randint(20, 240) * MINUTE
    sim.emit(t, "password.changed", acct.id, {"via": "support", "strength": rng.randint(3, 4), "breached": False},
             where, labels)  # fmt: skip
    login(sim, acct, t + rng.randint(60_000, 600_000), where, labels=labels)


def login(sim: Sim, acct: Account, ts: int, where: Where, typos: float = 0.0, labels: tuple = ()) -> int:
    """Typos (with probability ``typos``), a successful login and its MFA challenge; returns
    the time the user is in."""
    rng = sim.rng
    t = ts
    if typos and rng.random() < typos:
        for _ in range(1 if rng.random() < 0.8 else 2):
            sim.emit(t, "login.failed", acct.id, {"reason": "bad_password"}, where, labels)
            t += rng.randint(4_000, 25_000)
    mobile = where.user_agent is not None and where.user_agent.startswith("Wallet/")
    method = "biometric" if mobile and rng.random() < 0.45 else "password"
    mfa = acct.mfa[0] if acct.mfa and method == "password" else "none"
    sim.emit(t, "login.succeeded", acct.id, {"method": method, "mfa": mfa}, where, labels)
    if mfa != "none":
        t += rng.randint(5_000, 30_000)
        if rng.random() < 0.03:
            sim.emit(t, "mfa.challenge_failed", acct.id, {"method": mfa}, where, labels)
            t += rng.randint(5_000, 20_000)
        sim.emit(t, "mfa.challenge_succeeded", acct.id, {"method": mfa}, where, labels)
    return t


def wallet_action(sim: Sim, acct: Account, t: int, where: Where) -> None:
    r = sim.rng.random()
    if r < 0.45 or (r >= 0.82 and not acct.friends):
        deposit(sim, acct, t, where)
    elif r < 0.82:
        withdrawal(sim, acct, t, where)
    else:
        transfer(sim, acct, t, where)


def habitual_usd(sim: Sim, acct: Account, scale: float = 1.0) -> float:
    """An amount from the account's lognormal, truncated at ±2.5σ (at most ~10× its median):
    habits have no far tail, so "far outside the account's behaviour" is always labelled."""
    z = max(-2.5, min(2.5, sim.rng.gauss(0.0, 1.0)))
    return round(math.exp(acct.amount_mu + acct.amount_sigma * z) * scale, 2)


def credit_delay_ms(rng: random.Random, network: str) -> int:
    net = NETWORKS[network]
    minutes = min(net.credit_cap_min, net.credit_median_min * rng.lognormvariate(0.0, 0.45))
    return int(minutes * MINUTE) + rng.randrange(1000)


def deposit(
    sim: Sim,
    acct: Account,
    t: int,
    where: Where | None,
    usd: float | None = None,
    holding: tuple[str, str] | None = None,
    delay_ms: int | None = None,
    labels: tuple = (),
) -> tuple[str, int]:
    """``deposit.initiated`` now and ``deposit.credited`` after ``delay_ms`` (the network's
    normal time when None; a negative delay means it is never credited).  Returns the
    tx id and the initiation time."""
    rng = sim.rng
    asset, network = holding or rng.choice(acct.holdings)
    if usd is None:
        usd = habitual_usd(sim, acct)
        if acct.capped and acct.balance + usd > CAPPED_MAX_USD:
            usd = round(CAPPED_MAX_USD - acct.balance, 2)
            if usd < 5:
                return "", t
    tx = sim.uid("dp-")
    amount = asset_amount(asset, usd)
    usd_s = f"{usd:.2f}"
    sim.emit(
        t, "deposit.initiated", acct.id,
        {"tx_id": tx, "asset": asset, "amount": amount, "amount_usd": usd_s, "network": network},
        where, labels,
    )  # fmt: skip
    if delay_ms is None:
        delay_ms = credit_delay_ms(rng, network)
    if delay_ms >= 0:
        sim.at(acct, t + delay_ms, _credit, (tx, asset, amount, usd, labels))
    return tx, t


def _credit(sim: Sim, acct: Account, ts: int, arg: tuple[str, str, str, float, tuple]) -> None:
    tx, asset, amount, usd, labels = arg
    acct.balance += usd
    sim.emit(
        ts, "deposit.credited", acct.id,
        {"tx_id": tx, "asset": asset, "amount": amount, "amount_usd": f"{usd:.2f}"}, None, labels,
    )  # fmt: skip


def withdrawal(
    sim: Sim,
    acct: Account,
    t: int,
    where: Where,
    usd: float | None = None,
    holding: tuple[str, str] | None = None,
    address: str | None = None,
    outcome: str = "auto",
    labels: tuple = (),
) -> tuple[str, int]:
    """A withdrawal request and its outcome: ``"ok"`` (completed), a failure reason, or
    ``"auto"``: failed only if an outage is on or at the platform's small background rate.
    Returns ``(tx_id, request time)``; tx id '' when nothing was requested."""
    rng = sim.rng
    asset, network = holding or rng.choice(acct.holdings)
    if usd is None:
        usd = habitual_usd(sim, acct)
        if usd > 0.6 * acct.balance:
            usd = round(acct.balance * rng.uniform(0.1, 0.5), 2)
        if usd < 2:
            return "", t
    book = acct.book.setdefault((asset, network), [])
    if address is None:
        if book and (acct.known_only or rng.random() >= 0.08):
            address = rng.choice(book)
        else:
            address = new_address(rng, network)
            add_address(sim, acct, t, where, address, asset, labels)
            t += rng.randint(20_000, 180_000)
    net = NETWORKS[network]
    fee = rng.uniform(*net.fee_usd)
    tx = sim.uid("tx-")
    sim.emit(
        t, "withdrawal.requested", acct.id,
        {
            "tx_id": tx, "asset": asset, "amount": asset_amount(asset, usd), "amount_usd": f"{usd:.2f}",
            "to_address": address, "network": network, "fee": f"{fee:.2f}",
            "balance_usd_before": f"{max(acct.balance, 0.0):.2f}",
        },
        where, labels,
    )  # fmt: skip
    acct.tx_count += 1
    fail: str | None = None if outcome in ("ok", "auto") else outcome
    if outcome == "auto":
        outage = next((o for o in sim.outages if o[0] == network and o[1] <= t <= o[2]), None)
        if outage is not None:
            fail = outage[3]
            if outage[4] not in labels:
                labels = (*labels, outage[4])
        elif rng.random() < WITHDRAWAL_FAILURE_RATE and acct.wd_fail_day != t // DAY:
            fail = _legit_failure(rng, network)
            acct.wd_fail_day = t // DAY
    if fail is not None:
        sim.emit(t + rng.randint(5_000, 120_000), "withdrawal.failed", acct.id, {"tx_id": tx, "reason": fail}, None, labels)
    else:
        acct.balance -= usd + fee
        done = t + int(rng.uniform(*net.complete_min) * MINUTE)
        sim.emit(done, "withdrawal.completed", acct.id, {"tx_id": tx}, None, labels)
    return tx, t


def _legit_failure(rng: random.Random, network: str) -> str:
    reason = weighted(rng, FAILURE_REASONS)
    if network == "bank" and reason == "chain_error":
        return "bank_rejected"
    if network != "bank" and reason == "account_mismatch":
        return "limit_exceeded"
    return reason


def add_address(
    sim: Sim, acct: Account, t: int, where: Where, address: str, asset: str, labels: tuple = ()
) -> str:
    payload: dict[str, Any] = {"address": address, "asset": asset}
    if sim.rng.random() < 0.5:
        payload["label"] = sim.rng.choice(("exchange", "cold wallet", "OTC desk", "my ledger", "friend"))
    for holding, book in acct.book.items():
        if holding[0] == asset:
            book.append(address)
            break
    return sim.emit(t, "address.added", acct.id, payload, where, labels)


def transfer(
    sim: Sim,
    acct: Account,
    t: int,
    where: Where,
    usd: float | None = None,
    to_account: str | None = None,
    labels: tuple = (),
) -> tuple[str, int]:
    rng = sim.rng
    asset = rng.choice(acct.holdings)[0]
    if usd is None:
        usd = habitual_usd(sim, acct, 0.6)
        if usd > 0.6 * acct.balance:
            usd = round(acct.balance * rng.uniform(0.1, 0.5), 2)
        if usd < 1:
            return "", t
    tx = sim.uid("tr-")
    sim.emit(
        t, "transfer.sent", acct.id,
        {
            "tx_id": tx, "asset": asset, "amount": asset_amount(asset, usd), "amount_usd": f"{usd:.2f}",
            "to_account": to_account or rng.choice(acct.friends), "balance_usd_before": f"{max(acct.balance, 0.0):.2f}",
        },
        where, labels,
    )  # fmt: skip
    acct.balance -= usd
    acct.tx_count += 1
    return tx, t


def password_change(sim: Sim, acct: Account, ts: int, _: Any) -> None:
    where = acct.home_where(sim.rng, ts)
    if where is not None:
        sim.emit(ts, "password.changed", acct.id, {"via": "settings", "strength": sim.rng.randint(2, 4), "breached": False}, where)


def enrol_method(sim: Sim, acct: Account, ts: int, _: Any) -> None:
    """A new strong method; an SMS user often drops SMS afterwards (a method swap)."""
    rng = sim.rng
    where = acct.home_where(rng, ts)
    choices = [m for m in ("totp", "webauthn", "push") if m not in acct.mfa]
    if where is None or not choices:
        return
    method = rng.choice(choices)
    enrol(sim, acct, ts, where, method)
    if "sms" in acct.mfa and rng.random() < 0.5:
        t = ts + rng.randint(1, 10) * MINUTE
        disable(sim, acct, t, where, "sms", "settings")


def enrol(sim: Sim, acct: Account, t: int, where: Where, method: str, uri: str | None = None, labels: tuple = ()) -> str:
    payload: dict[str, Any] = {"method": method}
    if method == "totp":
        payload["otpauth_uri"] = uri or otpauth_uri(acct.id, totp_secret(sim.rng))
    eid = sim.emit(t, "mfa.enrolled", acct.id, payload, where, labels)
    if method not in acct.mfa:
        acct.mfa.append(method)
    sim.snapshot(acct, t + sim.rng.randint(1_000, 8_000), labels)
    return eid


def disable(sim: Sim, acct: Account, t: int, where: Where | None, method: str, via: str, labels: tuple = ()) -> str:
    eid = sim.emit(t, "mfa.disabled", acct.id, {"method": method, "via": via}, where, labels)
    if method in acct.mfa:
        acct.mfa.remove(method)
    sim.snapshot(acct, t + sim.rng.randint(1_000, 8_000), labels)
    return eid
