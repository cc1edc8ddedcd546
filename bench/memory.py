"""Resident memory per active account with every detector on (run in a fresh process).

    python -m bench.memory N [--no-checkpoints] [--cold-after-ms MS] [--cold-above-accounts N]

Feeds N synthetic accounts (snapshot, logins with geo and device, MFA, a deposit and its
credit, a withdrawal to an address, a failed login) through one account task and one source
task, then reports the RSS growth per account.  Prints one JSON object.

Every 512 accounts (4,096 events, a batch of ``secmon replay`` and about a busy poll's share
of a partition) both tasks end a batch, and every 4,096 accounts (32,768 events) they take a
checkpoint (``Task.changes()``), as the live worker does every
``engine.checkpoint_interval_ms``: the keys touched since the last checkpoint are held only
until then (``--no-checkpoints`` never drains them; a replay forgets them at each batch end).
Idle accounts are frozen at a batch end, so batches of 32,768 events (as this bench ended
them before 2026-11-26) let ~4,000 more accounts pile up unpacked between freezes than a
worker's batches do, and RSS keeps that high-water mark: ~100 B an account more at 100k.  Accounts idle for ``engine.cold_after_ms`` (default 10 min of event time) go
to the cold tier, as in the service, once the task holds more than
``engine.cold_above_accounts`` (default 10,000); ``--cold-after-ms 0`` keeps them all unpacked.
"""

from __future__ import annotations

import gc
import json
import sys
import time

from bench.common import current_rss_bytes
from secmon.contract import EventDecoder, iso_ms
from secmon.detectors.registry import resolve
from secmon.engine.pipeline import COLD_ABOVE_ACCOUNTS, COLD_AFTER_MS, Pipeline

T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z


def account_events(i: int, ts: int) -> list[bytes]:
    a = f"m{i:08d}"
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    env = f'"account_id":"{a}","schema_version":"1","ip":"{ip}","asn":{64500 + i % 50},"device_id":"d-{i}",' \
          f'"geo":{{"country":"SG","lat":1.35,"lon":103.8}}'
    def e(kind: str, t: int, payload: str, n: int) -> bytes:
        return (f'{{"event_id":"{a}-{n}","event_type":"{kind}","occurred_at":"{iso_ms(t)}",{env},'
                f'"payload":{payload}}}').encode()
    return [
        e("account.snapshot", ts, '{"balance_usd":"2500.00","mfa_methods":["totp"],"email_verified":true,'
          '"phone_verified":true,"created_at":"2025-01-01T00:00:00Z","locale":"en"}', 0),
        e("login.failed", ts + 1000, '{"reason":"bad_password"}', 1),
        e("login.succeeded", ts + 2000, '{"method":"password","mfa":"totp"}', 2),
        e("mfa.challenge_succeeded", ts + 3000, '{"method":"totp"}', 3),
        e("deposit.initiated", ts + 4000, f'{{"tx_id":"dp-{a}","asset":"USDT","amount":"120.00",'
          f'"amount_usd":"120.00","network":"TRON"}}', 4),
        e("deposit.credited", ts + 60_000, f'{{"tx_id":"dp-{a}","asset":"USDT","amount":"120.00",'
          f'"amount_usd":"120.00"}}', 5),
        e("withdrawal.requested", ts + 90_000, f'{{"tx_id":"wd-{a}","asset":"USDT","amount":"40.00",'
          f'"amount_usd":"40.00","to_address":"T{i:010d}","network":"TRON","fee":"1.00",'
          f'"balance_usd_before":"2620.00"}}', 6),
        e("withdrawal.completed", ts + 95_000, f'{{"tx_id":"wd-{a}"}}', 7),
    ]


def main() -> None:
    n = int(sys.argv[1])
    options = sys.argv[2:]
    checkpoints = "--no-checkpoints" not in options
    cold_after_ms = int(options[options.index("--cold-after-ms") + 1]) if "--cold-after-ms" in options else COLD_AFTER_MS
    cold_above = (int(options[options.index("--cold-above-accounts") + 1]) if "--cold-above-accounts" in options
                  else COLD_ABOVE_ACCOUNTS)
    gc.collect()
    pipeline = Pipeline(resolve({}), cold_after_ms=cold_after_ms, cold_above_accounts=cold_above)
    findings = [0]

    def count(_f: object) -> None:
        findings[0] += 1

    source = pipeline.source_task("mem-source", count)
    task = pipeline.account_task("mem-account", count, source.dispatch_record)
    decode = EventDecoder().decode
    gc.collect()
    before = current_rss_bytes()
    started = time.perf_counter()
    span = 3_600_000  # accounts active within one hour: nothing idles out
    for i in range(n):
        for raw in account_events(i, T0 + (i * span) // n):
            task.process(decode(raw))
        if i % 512 == 511:  # 4,096 events: a batch of secmon replay, a busy poll's share
            task.end_batch()
            source.end_batch()
        if checkpoints and i % 4096 == 4095:
            task.changes()
            source.changes()
    task.end_batch()
    elapsed = time.perf_counter() - started
    gc.collect()
    after = current_rss_bytes()
    keys = {d.name: len(d.state) for d in task.detectors}  # hot keys
    print(json.dumps({
        "accounts": n,
        "checkpoints": checkpoints,
        "cold_after_ms": cold_after_ms,
        "cold_above_accounts": cold_above,
        "rss_growth_mib": round((after - before) / 2**20, 1),
        "bytes_per_account": round((after - before) / n),
        "rss_total_mib": round(after / 2**20, 1),
        "events_per_s": round(n * 8 / elapsed),
        "findings": findings[0],
        "state_keys": keys,
        "cold_accounts": len(task.cold) if task.cold is not None else 0,
    }))


if __name__ == "__main__":
    main()
