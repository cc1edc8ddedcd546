"""``secmon check-config FILE``: validate a config file and print it with secrets masked."""

from __future__ import annotations

import argparse
import json

from secmon.config import load_config, redacted
from secmon.detectors.registry import resolve


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("check-config", help="validate a config file (secrets are masked)")
    p.add_argument("file")
    p.add_argument("--quiet", action="store_true", help="only the verdict")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    specs = resolve(config.detectors)
    from secmon.sections import validate_sections

    validate_sections(config)
    if not args.quiet:
        print(json.dumps(redacted(config), indent=2, sort_keys=True))
    print(f"{args.file}: OK ({len(specs)} detectors enabled: {', '.join(s.name for s in specs)})")
    return 0
