"""``secmon demo``: everything on one laptop in one command.

Starts the embedded Kafka-compatible broker, creates the topics, runs the service on a
SQLite store, serves metrics (and the console/API when installed), and plays simulated
wallet traffic into the broker at a gentle rate.  Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run broker + service + simulated traffic on this machine")
    p.add_argument("--config", help="YAML config (defaults are fine)")
    p.add_argument("--dir", default=".secmon-demo", help="state directory (SQLite file, logs)")
    p.add_argument("--port", type=int, default=9092, help="broker port (a free one if taken)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--accounts", type=int, default=1000)
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--rate", type=float, default=300.0, help="events per second played into the broker")
    p.add_argument("--speed", type=float, default=600.0, help="simulated seconds per wall-clock second")
    p.add_argument("--fresh", action="store_true", help="delete the state directory's database first")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from secmon.runtime.demo import Demo, DemoOptions
    from secmon.sim.generate import MIN_ACCOUNTS

    if args.accounts < MIN_ACCOUNTS:  # before anything starts, not in the traffic thread later
        print(f"secmon demo: --accounts must be at least {MIN_ACCOUNTS} (every finding kind needs its own "
              "accounts)", file=sys.stderr)
        return 2

    return Demo(DemoOptions(**{k: getattr(args, k) for k in DemoOptions.__dataclass_fields__})).run()
