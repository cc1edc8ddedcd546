"""``secmon run --config FILE [--workers N]``: the background service.

One worker is one consumer-group member; ``--workers N`` (or ``auto``, one per core) starts N
of them on this host under a supervisor (:mod:`secmon.runtime.supervisor`)."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the detection service against Kafka")
    p.add_argument("--config", help="YAML config file (defaults: embedded broker address, SQLite)")
    p.add_argument("--bootstrap", help="override kafka.bootstrap_servers")
    p.add_argument("--store", help="override store.url (SQLAlchemy URL)")
    p.add_argument("--workers", type=_workers, default=1,
                   help="worker processes on this host, in one consumer group: a number, or 'auto' "
                        "for one per core (default 1); worker i serves metrics on server.port + i")  # fmt: skip
    p.set_defaults(func=run)


def _workers(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'auto': {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return n


def run(args: argparse.Namespace) -> int:
    import msgspec

    from secmon.app import build_service, run_until_signalled, worker_id
    from secmon.config import load_config
    from secmon.logs import setup_logging
    from secmon.runtime.supervisor import worker_index

    overrides: dict[str, dict[str, str]] = {}
    if args.bootstrap:
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap}
    if args.store:
        overrides["store"] = {"url": args.store}
    config = load_config(args.config, overrides)
    setup_logging(config.logging.level, config.logging.format)
    if args.workers > 1:
        return _supervise(args, worker_id(config))
    index = worker_index()
    if index and config.server.port:
        config = msgspec.structs.replace(
            config, server=msgspec.structs.replace(config.server, port=config.server.port + index)
        )
    run_until_signalled(build_service(config))
    return 0


def _supervise(args: argparse.Namespace, base_id: str) -> int:
    import signal

    from secmon.runtime.supervisor import Supervisor

    argv = [sys.executable, "-m", "secmon.cli", "run"]
    for flag, value in (("--config", args.config), ("--bootstrap", args.bootstrap), ("--store", args.store)):
        if value:
            argv += [flag, value]
    supervisor = Supervisor(argv, args.workers, base_id)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: supervisor.stop())
    return supervisor.run()
