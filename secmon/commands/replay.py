"""``secmon replay FILE... --findings OUT [--dlq OUT]``: the pipeline over JSON Lines files."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("replay", help="run event files (JSON Lines) through the detectors")
    p.add_argument("files", nargs="+", help="JSON Lines files of contract events")
    p.add_argument("--findings", required=True, help="where to write findings (JSON Lines; - for stdout)")
    p.add_argument("--dlq", help="where to write dead letters (JSON Lines)")
    p.add_argument("--config", help="YAML config (detector options)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from secmon.config import load_config
    from secmon.detectors.registry import resolve
    from secmon.engine.pipeline import Pipeline
    from secmon.runtime.replay import replay, write_findings

    config = load_config(args.config)
    pipeline = Pipeline(
        resolve(config.detectors),
        allowed_lateness_ms=config.engine.allowed_lateness_ms,
        cold_after_ms=config.engine.cold_after_ms,
        cold_above_accounts=config.engine.cold_above_accounts,
    )
    dlq = open(args.dlq, "wb") if args.dlq else None  # noqa: SIM115 - closed below
    try:
        result = replay(
            args.files,
            pipeline,
            max_event_bytes=config.engine.max_event_bytes,
            batch_size=config.engine.replay_batch_size,
            dead_letters=dlq,
            progress=False if args.no_progress else None,
        )
    finally:
        if dlq is not None:
            dlq.close()
    if args.findings == "-":
        write_findings(result.findings, sys.stdout.buffer)
    else:
        with open(args.findings, "wb") as out:
            write_findings(result.findings, out)
    by_kind: dict[str, int] = {}
    for f in result.findings:
        by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
    print(
        f"replayed {result.events} events ({result.dead_letters} dead letters) in {result.seconds:.2f}s "
        f"= {result.events_per_second:,.0f} events/s; {len(result.findings)} findings",
        file=sys.stderr,
    )
    for kind, n in sorted(by_kind.items()):
        print(f"  {kind:24s} {n}", file=sys.stderr)
    for reason, n in sorted(result.dead_letter_reasons.items()):
        print(f"  dead letter {reason:18s} {n}", file=sys.stderr)
    return 0
