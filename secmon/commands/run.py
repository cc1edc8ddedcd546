"""``secmon run --config FILE``: the background service (one consumer-group member)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the detection service against Kafka")
    p.add_argument("--config", help="YAML config file (defaults: embedded broker address, SQLite)")
    p.add_argument("--bootstrap", help="override kafka.bootstrap_servers")
    p.add_argument("--store", help="override store.url (SQLAlchemy URL)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from secmon.app import build_service, run_until_signalled
    from secmon.config import load_config
    from secmon.logs import setup_logging

    overrides: dict[str, dict[str, str]] = {}
    if args.bootstrap:
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap}
    if args.store:
        overrides["store"] = {"url": args.store}
    config = load_config(args.config, overrides)
    setup_logging(config.logging.level, config.logging.format)
    run_until_signalled(build_service(config))
    return 0
