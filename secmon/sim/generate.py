"""Run a simulation: population → scenarios and hard negatives → habits → events + labels.

The order matters and is fixed: scenarios adjust the accounts they take before the habits
are planned (a whale's habits are a whale's), then every account's agenda runs.  Counts
scale with the population (the defaults are for 2,000 accounts), with at least two labelled
scenarios of every kind; each kind cycles through its variants so that all appear.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from secmon.contract import parse_ts_ms
from secmon.sim import negatives, scenarios
from secmon.sim.background import plan_background, plan_noise
from secmon.sim.core import Sim, iso
from secmon.sim.labels import ANCHORS
from secmon.sim.population import build_population
from secmon.sim.world import (
    DEPOSIT_SLA_MIN,
    LOCK_AFTER_FAILURES,
    LOCK_DURATION_MIN,
    LOCK_WINDOW_MIN,
    NORMAL_CREDIT_CAP_MIN,
    VALUABLE_LABEL_USD,
    WEAK_MFA_MAX_USD,
)

DEFAULT_START: Final = "2026-10-01T00:00:00Z"
MIN_ACCOUNTS: Final = 300
REFERENCE_ACCOUNTS: Final = 2_000

#: Scenarios per kind at 2,000 accounts, and the variants each kind cycles through.
SCENARIOS: Final[dict[str, tuple[int, tuple[str, ...]]]] = {
    "brute_force": (16, ("fast_lockout", "slow", "fast_lockout", "slow_success")),
    "account_lockout": (10, ("forgot_password", "forgot_password", "risk_lock")),
    "repeated_lockout": (8, ("attacker", "stale_device")),
    "credential_stuffing": (4, ("single_ip", "subnet24")),
    "password_spraying": (3, ("asn_pool",)),
    "compromise_suspected": (10, ("after_failures", "after_lockout")),
    "impossible_travel": (12, ("new_device", "known_device")),
    "account_takeover": (12, ("no_mfa", "sim_swap", "recovery_code", "support_reset")),
    "anomalous_transaction": (16, ("large_new_address", "large_known_address", "drain_transfer")),
    "deposit_delayed": (14, ("late", "stuck")),
    "withdrawal_failures": (12, ("account_mismatch", "limit_exceeded", "insufficient_funds", "risk_hold", "bank_rejected")),
    "withdrawal_outage": (3, ()),
    "mfa_weak_posture": (14, ("none", "sms_only", "email_only", "sms_email", "became_valuable")),
    "mfa_weak_secret": (14, scenarios.WEAK_SECRET_VARIANTS),
    "mfa_secret_reuse": (6, ("household", "farm")),
    "mfa_bruteforce": (10, ("totp_guessing", "push_fatigue", "push_fatigue_accepted")),
    "mfa_disabled_risk": (10, ("valuable_disabled", "disabled_before_withdrawal")),
    "weak_password": (14, ("breached", "very_weak", "breached_reset")),
}
#: Hard negatives at 2,000 accounts (carrier_nat: accounts behind the NAT).
NEGATIVES: Final = {
    "carrier_nat": 300, "traveller": 10, "whale": 12, "slow_credit": 12, "mistyper": 15, "withdrawal_retry": 10,
    "password_change_only": 12, "first_withdrawal": 8, "mfa_swap": 5,
}  # fmt: skip

#: How an anchor is found among a label's events: (rule, event types, n).
#: ``nth``: the n-th event of those types (or the last); ``last``; ``accounts``: the event at
#: which n distinct accounts have been seen.
_ANCHOR_RULES: Final[dict[str, tuple[str, frozenset[str], int]]] = {
    "brute_force": ("nth", frozenset({"login.failed"}), 10),
    "account_lockout": ("nth", frozenset({"account.locked"}), 1),
    "repeated_lockout": ("nth", frozenset({"account.locked"}), 3),
    "credential_stuffing": ("accounts", frozenset({"login.failed", "login.succeeded", "mfa.challenge_failed"}), 20),
    "password_spraying": ("accounts", frozenset({"login.failed", "login.succeeded"}), 20),
    "compromise_suspected": ("last", frozenset({"login.succeeded"}), 0),
    "impossible_travel": ("last", frozenset({"login.succeeded"}), 0),
    "account_takeover": ("nth", frozenset({"withdrawal.requested", "transfer.sent"}), 1),
    "anomalous_transaction": ("nth", frozenset({"withdrawal.requested", "transfer.sent"}), 1),
    "withdrawal_failures": ("nth", frozenset({"withdrawal.failed"}), 3),
    "withdrawal_outage": ("accounts", frozenset({"withdrawal.failed"}), 30),
    "mfa_weak_secret": ("nth", frozenset({"mfa.enrolled"}), 1),
    "mfa_secret_reuse": ("nth", frozenset({"mfa.enrolled"}), 2),
    "mfa_bruteforce": ("nth", frozenset({"mfa.challenge_failed"}), 5),
    "mfa_disabled_risk": ("nth", frozenset({"mfa.disabled"}), 1),
    "weak_password": ("nth", frozenset({"password.changed"}), 1),
}


@dataclass
class SimResult:
    sim: Sim
    accounts: int
    days: int
    seconds: float

    @property
    def events(self) -> list[tuple[int, int, dict[str, Any]]]:
        return self.sim.events


def scaled(base: int, accounts: int, minimum: int = 2) -> int:
    return max(minimum, round(base * accounts / REFERENCE_ACCOUNTS))


def simulate(
    seed: int,
    accounts: int = REFERENCE_ACCOUNTS,
    days: int = 3,
    start: str = DEFAULT_START,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> SimResult:
    """Generate a run; events end up sorted by ``(occurred_at, emission order)``."""
    if accounts < MIN_ACCOUNTS:
        raise ValueError(f"--accounts must be at least {MIN_ACCOUNTS} (every kind needs its own accounts)")
    if days < 1:
        raise ValueError("--days must be at least 1")
    started = time.perf_counter()
    sim = Sim(seed, parse_ts_ms(start), days)
    population = build_population(sim, accounts, random.Random(f"secmon-sim:{seed}:population"))
    planner = scenarios.Planner(sim, random.Random(f"secmon-sim:{seed}:scenarios"))
    _inject(planner, accounts)
    habits = random.Random(f"secmon-sim:{seed}:habits")
    for acct in population:
        plan_background(sim, acct, habits)
    plan_noise(sim, accounts, habits)
    for acct in progress(population, len(population)) if progress else population:
        sim.run_agenda(acct)
    sim.events.sort()  # (ts, seq, event): seq is unique, so events are never compared
    _finish_labels(sim)
    return SimResult(sim, accounts, days, time.perf_counter() - started)


def _inject(p: scenarios.Planner, n: int) -> None:
    """Take accounts for every scenario and hard negative (order fixed: determinism)."""
    negatives.carrier_nat(p, min(NEGATIVES["carrier_nat"], n * 15 // 100))
    for name in ("traveller", "whale", "slow_credit", "mistyper", "withdrawal_retry", "password_change_only",
                 "first_withdrawal", "mfa_swap"):  # fmt: skip
        for _ in range(scaled(NEGATIVES[name], n)):
            getattr(negatives, name)(p)
    for kind, (base, variants) in SCENARIOS.items():
        count = scaled(base, n)
        for i in range(count):
            if kind == "withdrawal_outage":
                scenarios.withdrawal_outage(p, i, max_accounts=min(80, n * 4 // 100))
            elif kind in ("credential_stuffing", "password_spraying"):
                getattr(scenarios, kind)(p, variants[i % len(variants)], max_existing=max(10, n * 4 // 100))
            else:
                getattr(scenarios, kind)(p, variants[i % len(variants)])


def _finish_labels(sim: Sim) -> None:
    """Order each label's events by time and find its anchor (see ``labels.ANCHORS``)."""
    wanted = {eid for lab in sim.scenarios for eid in lab.events}
    info: dict[str, tuple[int, int, str, str]] = {}
    for ts, seq, ev in sim.events:
        if ev["event_id"] in wanted:
            info[ev["event_id"]] = (ts, seq, ev["event_type"], ev["account_id"])
    for lab in sim.scenarios:
        rows = sorted((info[e] + (e,) for e in set(lab.events)), key=lambda r: (r[0], r[1]))
        lab.events = [r[4] for r in rows]
        if lab.anchor_ms or lab.kind not in _ANCHOR_RULES:
            continue
        rule, types, n = _ANCHOR_RULES[lab.kind]
        hits = [r for r in rows if r[2] in types]
        if not hits:
            continue
        if rule == "nth":
            lab.anchor_ms = hits[min(n, len(hits)) - 1][0]
        elif rule == "last":
            lab.anchor_ms = hits[-1][0]
        else:
            seen: set[str] = set()
            lab.anchor_ms = hits[-1][0]
            for ts, _, _, account, _ in hits:
                seen.add(account)
                if len(seen) >= n:
                    lab.anchor_ms = ts
                    break


def labels_document(result: SimResult, shift_ms: int = 0) -> dict[str, Any]:
    sim = result.sim

    def when(ms: int) -> str:
        return iso(ms + shift_ms)

    counts = Counter(s.kind for s in sim.scenarios)
    return {
        "version": 1,
        "seed": sim.seed,
        "generated_at_fixed": when(sim.t_end),
        "window": {"start": when(sim.t0), "end": when(sim.t_end)},
        "accounts": result.accounts,
        "days": result.days,
        "events": len(sim.events),
        "assumptions": {
            "deposit_sla_minutes": DEPOSIT_SLA_MIN,
            "normal_credit_max_minutes": NORMAL_CREDIT_CAP_MIN,
            "lockout_policy": {
                "failures": LOCK_AFTER_FAILURES, "window_minutes": LOCK_WINDOW_MIN, "lock_minutes": LOCK_DURATION_MIN,
            },
            "weak_mfa_background_max_usd": WEAK_MFA_MAX_USD,
            "weak_posture_label_min_usd": VALUABLE_LABEL_USD,
            "anchors": ANCHORS,
        },
        "counts": {k: counts[k] for k in SCENARIOS},
        "scenarios": [s.to_json(when) for s in sim.scenarios],
        "hard_negatives": [n.to_json(when) for n in sim.negatives],
    }


def shift_event(ev: dict[str, Any], ts: int, shift_ms: int) -> dict[str, Any]:
    """The event moved ``shift_ms`` later in time (``occurred_at`` and payload timestamps)."""
    if not shift_ms:
        return ev
    out = dict(ev)
    out["occurred_at"] = iso(ts + shift_ms)
    payload = ev["payload"]
    for key in ("locked_until", "created_at"):
        if payload.get(key):
            out["payload"] = payload = dict(payload)
            payload[key] = iso(parse_ts_ms(payload[key]) + shift_ms)
    return out


def write(result: SimResult, out_dir: str | Path, shift_ms: int = 0) -> tuple[Path, Path]:
    """``events.jsonl`` (one event per line, in time order) and ``labels.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events_path, labels_path = out / "events.jsonl", out / "labels.json"
    dumps = orjson.dumps
    with events_path.open("wb") as fh:
        chunk: list[bytes] = []
        for ts, _, ev in result.events:
            chunk.append(dumps(shift_event(ev, ts, shift_ms)))
            if len(chunk) >= 8192:
                fh.write(b"\n".join(chunk) + b"\n")
                chunk.clear()
        if chunk:
            fh.write(b"\n".join(chunk) + b"\n")
    labels_path.write_bytes(orjson.dumps(labels_document(result, shift_ms), option=orjson.OPT_INDENT_2) + b"\n")
    return events_path, labels_path
