"""``secmon check-config FILE``: validate a config file and print it with secrets masked."""

from __future__ import annotations

import argparse
import json

from secmon.config import convert, load_config, redacted
from secmon.detectors.registry import REGISTRY, resolve


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("check-config", help="validate a config file (secrets are masked)")
    p.add_argument("file")
    p.add_argument("--quiet", action="store_true", help="only the verdict")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    specs = resolve(config.detectors)
    from secmon.sections import validate_sections

    typed = validate_sections(config)
    if not args.quiet:
        doc = redacted(config)
        doc.update({name: redacted(value) for name, value in typed.items()})  # secrets of sections masked
        # Detector options typed by their own Config, so a Secret option (e.g. the MFA
        # fingerprint key) is masked too, not printed as the raw YAML value.
        doc["detectors"] = {
            name: redacted(convert(opts or {}, REGISTRY[name].Config, f"detectors.{name}"))
            for name, opts in config.detectors.items()
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
    print(f"{args.file}: OK ({len(specs)} detectors enabled: {', '.join(s.name for s in specs)})")
    return 0
