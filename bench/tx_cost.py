#!/usr/bin/env python3
"""Engine cost and state size of the transaction detectors.

usage: python bench/tx_cost.py [--accounts 20000] [--days 10] [--events FILE.jsonl]

A synthetic, deterministic stream (a login a day, from a second device one day in five;
deposits initiated/credited, withdrawals requested then completed or failed, transfers,
address book, 1 % anomalous withdrawals from day 3) — or the events of FILE
(PaySim, ``secmon simulate``) — is decoded once; then

- time: the account task (plus the source task the failures are forwarded to) processes it
  with no detectors and with the four account-scope transaction detectors +
  ``withdrawal_outage`` (statistics only, then with a model trained on the first half), micro-
  batches of 4,096 events as in ``secmon replay``; the difference per wallet event is the
  detectors' cost (process CPU time, best of 3 runs), divided by the number of *wallet*
  events (auth events, which ``account_takeover`` also reads, count in the cost only);
- size: ``tracemalloc`` measures the memory each detector's state holds after the stream,
  divided by its number of keys (accounts).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from secmon.contract import EventDecoder, iso_ms
from secmon.detectors.account_takeover import AccountTakeover, AccountTakeoverConfig
from secmon.detectors.anomalous_transaction import AnomalousTransaction, AnomalousTransactionConfig
from secmon.detectors.base import Detector
from secmon.detectors.deposit_delayed import DepositDelayed, DepositDelayedConfig
from secmon.detectors.withdrawal_failures import WithdrawalFailures, WithdrawalFailuresConfig
from secmon.detectors.withdrawal_outage import WithdrawalOutage, WithdrawalOutageConfig
from secmon.engine.task import Task

T0 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
HOUR, DAY = 3_600_000, 86_400_000


def stream(accounts: int, days: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    n = 0

    def add(etype: str, acct: str, ts: int, payload: dict[str, Any]) -> None:
        nonlocal n
        n += 1
        out.append({"event_id": f"e{n}", "event_type": etype, "schema_version": "1", "occurred_at": iso_ms(ts),
                    "account_id": acct, "device_id": device, "geo": {"country": "DE"}, "payload": payload})  # fmt: skip

    for a in range(accounts):
        acct = f"w{a:06d}"
        level = 10 ** rng.uniform(1.3, 4.0)
        addrs = [f"T{a}x{i}" for i in range(rng.randint(1, 3))]
        hour = rng.randrange(24)
        balance = level * rng.uniform(5, 50)
        for d in range(days):
            base = T0 + d * DAY + hour * HOUR + rng.randrange(2 * HOUR)
            device = f"d-{acct}" if rng.random() < 0.8 else f"d2-{acct}"  # a second device now and then
            add("login.succeeded", acct, base - 60_000, {"method": "password", "mfa": "totp"})
            usd = f"{level * 10 ** rng.gauss(0, 0.15):.2f}"
            if rng.random() < 0.5:
                tx = f"dp-{a}-{d}"
                add(
                    "deposit.initiated",
                    acct,
                    base,
                    {"tx_id": tx, "asset": "USDT", "amount": usd, "amount_usd": usd, "network": "TRON"},
                )
                add(
                    "deposit.credited",
                    acct,
                    base + rng.randrange(60_000, 600_000),
                    {"tx_id": tx, "asset": "USDT", "amount": usd, "amount_usd": usd},
                )
            tx = f"wd-{a}-{d}"
            to = rng.choice(addrs)
            if d >= 2 and rng.random() < 0.01:  # an anomaly now and then: the model path runs
                usd, to = f"{level * rng.uniform(8, 60):.2f}", f"T{a}x-new{d}"
            add("withdrawal.requested", acct, base + HOUR, {"tx_id": tx, "asset": "USDT", "amount": usd, "amount_usd": usd,
                "to_address": to, "network": "TRON", "fee": "1.00", "balance_usd_before": f"{balance:.2f}"})  # fmt: skip
            if rng.random() < 0.05:
                add(
                    "withdrawal.failed",
                    acct,
                    base + HOUR + 60_000,
                    {"tx_id": tx, "reason": rng.choice(["bank_rejected", "chain_error", "account_mismatch"])},
                )
            else:
                add("withdrawal.completed", acct, base + HOUR + 60_000, {"tx_id": tx})
            if rng.random() < 0.3:
                add("transfer.sent", acct, base + 2 * HOUR, {"tx_id": f"tr-{a}-{d}", "asset": "USDT", "amount": usd,
                    "amount_usd": usd, "to_account": f"w{rng.randrange(accounts):06d}"})  # fmt: skip
            if rng.random() < 0.05:
                add("address.added", acct, base + 3 * HOUR, {"address": f"T{a}n{d}", "asset": "USDT"})
    out.sort(key=lambda e: e["occurred_at"])
    return out


def detectors(model_path: str | None = None) -> tuple[list[Detector[Any, Any]], list[Detector[Any, Any]]]:
    return (
        [
            AnomalousTransaction(AnomalousTransactionConfig(model_path=model_path)),
            AccountTakeover(AccountTakeoverConfig()),
            DepositDelayed(DepositDelayedConfig()),
            WithdrawalFailures(WithdrawalFailuresConfig()),
        ],
        [WithdrawalOutage(WithdrawalOutageConfig())],
    )


def run(
    events: list[Any], account_dets: list[Detector[Any, Any]], source_dets: list[Detector[Any, Any]]
) -> tuple[float, int]:
    findings: list[Any] = []
    source = Task("s", source_dets, emit=findings.append)
    task = Task("a", account_dets, emit=findings.append, forward=source.dispatch_record)
    process, end = task.process, task.end_batch
    gc.collect()
    started = time.process_time()  # CPU time: the machine is shared
    for i, event in enumerate(events):
        process(event, "wallet.events/0", i)
        if i % 4096 == 4095:
            end()
            source.advance_to(task.stream_ms)
            source.end_batch()
    task.flush()
    source.flush()
    return time.process_time() - started, len(findings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--events", help="a JSON Lines file of contract events instead of the synthetic stream")
    args = ap.parse_args()
    if args.events:
        from secmon.sources.files import JsonLinesSource

        raw = [json.loads(line) for _, _, line in JsonLinesSource([args.events])]
    else:
        raw = stream(args.accounts, args.days)
    decode = EventDecoder().decode
    events = [decode(json.dumps(e).encode()) for e in raw]
    wallet = sum(1 for e in events if e.topic == "wallet.events")
    accounts = len({e.account_id for e in events})
    report: dict[str, Any] = {"events": len(events), "wallet_events": wallet, "accounts": accounts}

    with tempfile.TemporaryDirectory() as tmp:
        from secmon.models.isoforest import save_model
        from secmon.models.tx_training import train

        history = Path(tmp) / "history.jsonl"
        half = raw[: len(raw) // 2]
        history.write_text("".join(json.dumps(e) + "\n" for e in half))
        model_path = str(Path(tmp) / "tx.model")
        save_model(train([history], AnomalousTransactionConfig()), model_path)

        timings: dict[str, float] = {}
        for label, dets in (("none", ([], [])), ("stat_only", detectors()), ("with_model", detectors(model_path))):
            best = min(run(events, *dets)[0] for _ in range(3))
            timings[label] = best
        n_findings = run(events, *detectors(model_path))[1]
        report["findings"] = n_findings
        report["seconds"] = {k: round(v, 3) for k, v in timings.items()}
        report["us_per_wallet_event_added"] = {
            k: round((timings[k] - timings["none"]) / wallet * 1e6, 2) for k in ("stat_only", "with_model")
        }

        sizes: dict[str, Any] = {}
        for factory in (
            lambda: AnomalousTransaction(AnomalousTransactionConfig(model_path=model_path)),
            lambda: AccountTakeover(AccountTakeoverConfig()),
            lambda: DepositDelayed(DepositDelayedConfig()),
            lambda: WithdrawalFailures(WithdrawalFailuresConfig()),
        ):
            det = factory()
            task = Task("m", [det], emit=lambda f: None)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for i, event in enumerate(events):
                task.process(event, "wallet.events/0", i)
            task.flush()
            task.timers = type(task.timers)()  # timers are task metadata, not per-account state
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            keys = len(det.state)
            sizes[det.name] = {"keys": keys, "bytes_per_key": round(held / keys) if keys else None}
        report["state"] = sizes
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
