"""``secmon simulate``: seeded wallet traffic with labelled attacks, to a directory or Kafka.

    secmon simulate --seed 7 --out DIR [--accounts 2000] [--days 3]
        → DIR/events.jsonl (time order) and DIR/labels.json (schema: secmon.sim.labels)
    secmon simulate --seed 7 --kafka HOST:PORT [--rate EV_PER_S] [--speed X] [--config FILE] [--out DIR]
        → the contract topics, timeline shifted to start now (see secmon.sim.play);
          with --out the shifted events and labels are written too, for `secmon eval`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from secmon.config import load_config
from secmon.sim.generate import DEFAULT_START, REFERENCE_ACCOUNTS, simulate, write


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("simulate", help="generate labelled wallet traffic (files or Kafka)")
    p.add_argument("--seed", type=int, required=True, help="RNG seed: same seed and options, same bytes")
    p.add_argument("--out", help="directory for events.jsonl and labels.json")
    p.add_argument("--accounts", type=int, default=REFERENCE_ACCOUNTS, help="population size (default 2000)")
    p.add_argument("--days", type=int, default=3, help="simulated days (default 3)")
    p.add_argument("--start", default=DEFAULT_START, help=f"simulated start, RFC 3339 (default {DEFAULT_START})")
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="produce to Kafka at this bootstrap address instead")
    p.add_argument("--rate", type=float, help="Kafka: at most this many events per second")
    p.add_argument("--speed", type=float, help="Kafka: simulated seconds per wall-clock second (1 = real time)")
    p.add_argument("--config", help="YAML config (Kafka security options and topic names)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _progress(enabled: bool, desc: str, unit: str) -> Callable[[Iterable[Any], int], Iterable[Any]] | None:
    if not enabled:
        return None
    from tqdm import tqdm

    return lambda items, total: tqdm(items, total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if not args.out and not args.kafka:
        print("secmon simulate: give --out DIR and/or --kafka BOOTSTRAP", file=sys.stderr)
        return 2
    show = not args.no_progress and sys.stderr.isatty()
    try:
        result = simulate(args.seed, args.accounts, args.days, args.start, progress=_progress(show, "simulate", " acct"))
    except ValueError as exc:
        print(f"secmon simulate: {exc}", file=sys.stderr)
        return 2
    shift_ms = 0
    if args.kafka:
        shift_ms = int(time.time() * 1000) - result.events[0][0]
    if args.out:
        written = time.perf_counter()
        events_path, labels_path = write(result, args.out, shift_ms)
        written = time.perf_counter() - written
        n = len(result.events)
        print(
            f"{n} events, {len(result.sim.scenarios)} labelled scenarios, {len(result.sim.negatives)} hard negatives "
            f"-> {events_path}, {labels_path} ({result.seconds:.2f}s generate + {written:.2f}s write "
            f"= {n / (result.seconds + written):,.0f} events/s)",
            file=sys.stderr,
        )
    if args.kafka:
        return _to_kafka(args, result.events, shift_ms, show)
    return 0


def _to_kafka(args: argparse.Namespace, events: list[tuple[int, int, dict[str, Any]]], shift_ms: int, show: bool) -> int:
    from kafka import KafkaProducer

    from secmon.sim.play import play

    kafka = load_config(args.config).kafka
    options = kafka.client_options() | {"bootstrap_servers": args.kafka.split(",")}
    producer = KafkaProducer(**options, acks="all", linger_ms=20, batch_size=256 * 1024, client_id="secmon-simulate")
    started = time.perf_counter()
    try:
        sent = play(events, producer, kafka.topics, shift_ms=shift_ms, rate=args.rate, speed=args.speed,
                    progress=_progress(show, "produce", "ev"))  # fmt: skip
    finally:
        producer.close()
    seconds = time.perf_counter() - started
    print(f"produced {sent} events to {args.kafka} in {seconds:.1f}s ({sent / max(seconds, 1e-9):,.0f}/s)", file=sys.stderr)
    return 0
