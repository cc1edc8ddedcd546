"""``secmon broker``: run the embedded Kafka-compatible broker (Tansu) in the foreground."""

from __future__ import annotations

import argparse
import os
import sys

from secmon.runtime.broker import EmbeddedBroker


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (dev/demo)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    broker = EmbeddedBroker(args.host, args.port)
    print(f"embedded broker (Tansu, in-memory) on {broker.bootstrap}", file=sys.stderr, flush=True)
    cmd = broker.command()
    os.execv(cmd[0], cmd)  # replace this process: signals go straight to the broker
    return 0  # pragma: no cover
