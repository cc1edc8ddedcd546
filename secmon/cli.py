"""The ``secmon`` command: one sub-command per module in ``secmon.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Each module defines ``register(subparsers)``, which adds its parser and sets ``func``.
COMMAND_MODULES = (
    "secmon.commands.run",
    "secmon.commands.broker",
    "secmon.commands.demo",
    "secmon.commands.replay",
    "secmon.commands.check_config",
    "secmon.commands.audit_mfa",
    "secmon.commands.train",
    "secmon.commands.simulate",
    "secmon.commands.eval",
    "secmon.commands.report",
    "secmon.commands.api",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secmon",
        description="Account-security monitoring for a digital wallet.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a clear one-line error for the user; details with -v/--debug
        from secmon.config import ConfigError

        if isinstance(exc, ConfigError | FileNotFoundError):
            print(f"secmon: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
