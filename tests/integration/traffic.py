"""A deterministic mixed event stream for the integration tests.

Many accounts over a few hours, with weak passwords, failed-login bursts, deposits credited
late or on time, failing withdrawals, and a final event for every account at the end (so
every partition's stream time reaches the end, as in a replay).
"""

from __future__ import annotations

import random
from typing import Any

from tests.helpers.events import MINUTE, SECOND, T0, ev, geo


def mixed_traffic(accounts: int = 80, seed: int = 1, hours: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    end = T0 + hours * 60 * MINUTE
    for i in range(accounts):
        acct = f"it{seed}-{i:04d}"
        ip = f"198.51.{i % 200}.{(i * 7) % 250 + 1}"
        home = geo("SG", 1.35, 103.82, "Singapore")
        t = T0 + rng.randrange(0, 20 * MINUTE)
        events.append(ev("account.snapshot", acct, t, {"balance_usd": f"{rng.choice([50, 5000, 90000])}.00",
                                                     "mfa_methods": rng.choice([[], ["sms"], ["totp"]])},
                         ip=ip, geo=home, asn=64500))
        t += MINUTE
        events.append(ev("login.succeeded", acct, t, ip=ip, geo=home, asn=64500, device_id=f"d-{acct}"))
        if i % 5 == 0:  # a burst of failures from an attacker
            for _ in range(rng.randrange(8, 25)):
                t += 10 * SECOND
                events.append(ev("login.failed", acct, t, ip="203.0.113.66", geo=geo("RU", 55.75, 37.62), asn=64999))
        if i % 3 == 0:
            t += MINUTE
            events.append(ev("password.changed", acct, t, {"strength": rng.choice([0, 1, 3]),
                                                            "breached": rng.random() < 0.3}, ip=ip))
        if i % 4 == 0:
            t += MINUTE
            tx = f"dp-{acct}"
            events.append(ev("deposit.initiated", acct, t, {"tx_id": tx, "network": "BTC"}, ip=ip))
            late = i % 8 == 0
            events.append(ev("deposit.credited", acct, t + (55 if late else 12) * MINUTE, {"tx_id": tx}, ip=ip))
        if i % 6 == 0:
            for k in range(4):
                t += 2 * MINUTE
                tx = f"wd-{acct}-{k}"
                events.append(ev("withdrawal.requested", acct, t, {"tx_id": tx, "to_address": f"addr-{acct}"}, ip=ip))
                events.append(ev("withdrawal.failed", acct, t + 30 * SECOND, {"tx_id": tx,
                                                                               "reason": "account_mismatch"}, ip=ip))
        events.append(ev("login.succeeded", acct, end + rng.randrange(0, MINUTE), ip=ip, geo=home, asn=64500,
                         device_id=f"d-{acct}"))
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return events
