"""secmon under a login attack storm: speed, findings and memory while a botnet stuffs passwords.

    python -m bench.storm BASE_EVENTS.jsonl [--attempts 300000] [--bots 20000] [--asns 500]
                          [--targets 150000] [--minutes 30] [--seed 1] [--keep DIR]

Why: the detectors' cost is measured on everyday traffic (``bench.run``, ``bench/auth_cost.py``),
where a counted login failure is one event in fifteen.  In an attack the mix turns over, and
that is when secmon matters most: a security team needs it to keep up, to say "one campaign"
rather than thousands of findings, and to hold its memory.

The storm is laid over BASE_EVENTS (normal traffic from ``secmon simulate``), in its middle,
over ``--minutes`` of event time, and has the three shapes stuffing takes:

* a residential-proxy botnet: ``--bots`` addresses spread over ``--asns`` networks, each
  address in its own /24 and each trying a few accounts (below any per-address threshold);
* one data-centre address trying 10 % of the attempts (plain stuffing);
* a rotating pool of 50 addresses in one /24 with another 10 % (stuffing per network);

against a combo list of ``--targets`` names, a fifth of them real accounts of the base
traffic (``bad_password``, 0.3 % of their attempts succeed) and the rest unknown
(``unknown_account``), at most two attempts per name; plus 2,000 guesses at one real
account from one address (brute force).

Both files go through the engine as ``secmon replay`` runs them (all detectors, one account
and one source task), each in a fresh process, for events/s, the storm's marginal cost per
event, peak RSS, the state keys the detectors hold at the end, and the findings per kind the
storm adds.  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from secmon.contract import iso_ms, parse_ts_ms

MINUTE_MS = 60_000
#: Where the bots appear to be (country, city, lat, lon): residential proxies are global.
BOT_PLACES = (
    ("US", "Dallas", 32.78, -96.80), ("BR", "Sao Paulo", -23.55, -46.63), ("VN", "Hanoi", 21.03, 105.85),
    ("IN", "Mumbai", 19.08, 72.88), ("RU", "Moscow", 55.76, 37.62), ("DE", "Frankfurt", 50.11, 8.68),
    ("ID", "Jakarta", -6.21, 106.85), ("TR", "Istanbul", 41.01, 28.98), ("MX", "Mexico City", 19.43, -99.13),
    ("PH", "Manila", 14.60, 120.98),
)  # fmt: skip
BOT_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def _login(rng: random.Random, ts: int, account: str, ok: bool, reason: str, ip: str, asn: int,
           place: tuple[str, str, float, float]) -> tuple[int, bytes]:
    country, city, lat, lon = place
    doc: dict[str, Any] = {
        "event_id": f"storm-{rng.getrandbits(64):016x}",
        "event_type": "login.succeeded" if ok else "login.failed",
        "schema_version": "1",
        "occurred_at": iso_ms(ts),
        "account_id": account,
        "source": "auth-service",
        "payload": {"method": "password", "mfa": "none"} if ok else {"reason": reason},
        "ip": ip,
        "user_agent": BOT_UA,
        "geo": {"country": country, "city": city, "lat": lat, "lon": lon},
        "asn": asn,
    }
    return ts, json.dumps(doc, separators=(",", ":")).encode()


def storm_events(base: Path, attempts: int, bots: int, asns: int, targets: int, minutes: int,
                 seed: int) -> tuple[list[tuple[int, bytes]], dict[str, Any]]:
    """The storm's events (time, line), and what it holds."""
    rng = random.Random(seed)
    accounts: set[str] = set()
    first = last = None
    with base.open("rb") as fh:
        for line in fh:
            doc = json.loads(line)
            accounts.add(doc["account_id"])
            ts = parse_ts_ms(doc["occurred_at"])
            first = ts if first is None else min(first, ts)
            last = ts if last is None else max(last, ts)
    assert first is not None and last is not None, f"{base} holds no events"
    real = sorted(accounts)
    start = (first + last) // 2
    span = minutes * MINUTE_MS

    # The combo list: a fifth real accounts, the rest names the platform does not know.
    n_real = min(len(real), targets // 5)
    combo = [(a, True) for a in rng.sample(real, n_real)]
    combo += [(f"w{rng.getrandbits(48):012x}", False) for _ in range(targets - n_real)]
    rng.shuffle(combo)

    # The botnet: bots spread over ASNs (64512+: private numbers, no clash with the base),
    # each ASN with 128 /24s of 10/8 of its own (a /24 lies within one ASN), most bots in a
    # /24 of their own.
    bot_net = [rng.randrange(asns) for _ in range(bots)]
    bot_asn = [64512 + n for n in bot_net]
    bot_ip = [f"10.{n // 2}.{n % 2 * 128 + rng.randrange(128)}.{rng.randrange(1, 255)}" for n in bot_net]
    bot_place = [rng.choice(BOT_PLACES) for _ in range(bots)]
    # The other sources in 32-bit private ASNs: none of the botnet's.
    dc_ip, dc_asn = "198.51.100.23", 4_200_000_001  # one data-centre address
    pool_asn = 4_200_000_002
    pool = [f"203.0.113.{i}" for i in range(10, 60)]  # a rotating pool in one /24

    out: list[tuple[int, bytes]] = []
    succeeded = 0
    made = 0
    i = 0
    while made < attempts:
        account, is_real = combo[i % len(combo)]
        i += 1
        roll = rng.random()
        if roll < 0.1:
            ip, asn, place = dc_ip, dc_asn, BOT_PLACES[5]
        elif roll < 0.2:
            ip, asn, place = rng.choice(pool), pool_asn, BOT_PLACES[0]
        else:
            b = rng.randrange(bots)
            ip, asn, place = bot_ip[b], bot_asn[b], bot_place[b]
        ts = start + rng.randrange(span)
        for _ in range(rng.randint(1, 2)):
            if made >= attempts:
                break
            ok = is_real and rng.random() < 0.003
            succeeded += ok
            out.append(_login(rng, ts, account, ok, "bad_password" if is_real else "unknown_account", ip, asn, place))
            made += 1
            if ok:
                break
            ts += rng.randint(1_000, 10_000)
    # Brute force: 2,000 guesses at one real account from one address, a few per second.
    victim = rng.choice(real)
    ts = start + span // 3
    for _ in range(2_000):
        out.append(_login(rng, ts, victim, False, "bad_password", "192.0.2.77", 4_200_000_003, BOT_PLACES[4]))
        ts += rng.randint(200, 600)
    info = {"storm_events": len(out), "attempts": attempts, "successes": succeeded, "bots": bots, "asns": asns,
            "targets": targets, "real_targets": n_real, "minutes": minutes, "brute_force_attempts": 2_000}
    return out, info


def write_merged(base: Path, storm: list[tuple[int, bytes]], out: Path) -> None:
    """BASE_EVENTS with the storm merged in by event time (both in time order)."""
    storm.sort(key=lambda e: e[0])
    k = 0
    with base.open("rb") as src, out.open("wb") as dst:
        for line in src:
            ts = parse_ts_ms(json.loads(line)["occurred_at"])
            while k < len(storm) and storm[k][0] < ts:
                dst.write(storm[k][1] + b"\n")
                k += 1
            dst.write(line if line.endswith(b"\n") else line + b"\n")
        for _, raw in storm[k:]:
            dst.write(raw + b"\n")


def _replay_child(path: Path) -> dict[str, Any]:
    """One replay in a fresh process (so peak RSS is this file's alone)."""
    code = (
        "import json, resource, sys\n"
        "from secmon.detectors.registry import resolve\n"
        "from secmon.engine.pipeline import Pipeline\n"
        "from secmon.runtime.replay import replay\n"
        "pipeline = Pipeline(resolve({}))\n"
        "r = replay([sys.argv[1]], pipeline, progress=False)\n"
        "print(json.dumps({'events': r.events, 'seconds': r.seconds, 'finding_records': r.finding_records,\n"
        "                  'kinds': [f.kind for f in r.findings],\n"
        "                  'state_keys': r.state_keys,\n"
        "                  'max_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base", type=Path, help="normal traffic: DIR/events.jsonl of secmon simulate")
    p.add_argument("--attempts", type=int, default=300_000)
    p.add_argument("--bots", type=int, default=20_000)
    p.add_argument("--asns", type=int, default=500)
    p.add_argument("--targets", type=int, default=150_000)
    p.add_argument("--minutes", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=2, help="replays of each file, interleaved; the best is kept")
    p.add_argument("--keep", type=Path, help="write the merged file here instead of a temporary one")
    args = p.parse_args()
    if not 1 <= args.asns <= 512:
        p.error("--asns must be 1-512 (each takes 128 /24s of 10/8)")
    storm, info = storm_events(args.base, args.attempts, args.bots, args.asns, args.targets, args.minutes, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        merged = args.keep or Path(tmp) / "storm.jsonl"
        write_merged(args.base, storm, merged)
        base = with_storm = None
        for _ in range(args.runs):  # interleaved: this machine's speed drifts
            b, s = _replay_child(args.base), _replay_child(merged)
            base = b if base is None or b["seconds"] < base["seconds"] else base
            with_storm = s if with_storm is None or s["seconds"] < with_storm["seconds"] else with_storm
    assert base is not None and with_storm is not None
    added = Counter(with_storm["kinds"]) - Counter(base["kinds"])
    n_storm = with_storm["events"] - base["events"]
    result = {
        "storm": info,
        "base": {"events": base["events"], "events_per_s": round(base["events"] / base["seconds"]),
                 "max_rss_mib": round(base["max_rss_mib"], 1), "state_keys": base["state_keys"],
                 "findings": len(base["kinds"])},
        "with_storm": {"events": with_storm["events"],
                       "events_per_s": round(with_storm["events"] / with_storm["seconds"]),
                       "max_rss_mib": round(with_storm["max_rss_mib"], 1),
                       "state_keys": with_storm["state_keys"], "findings": len(with_storm["kinds"]),
                       "finding_records": with_storm["finding_records"]},
        "storm_us_per_event": round((with_storm["seconds"] - base["seconds"]) / n_storm * 1e6, 2),
        "storm_events_per_s": round(n_storm / (with_storm["seconds"] - base["seconds"])),
        "findings_added_by_kind": dict(sorted(added.items())),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
