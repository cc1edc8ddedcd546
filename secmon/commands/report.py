"""``secmon report cases --since DATE``: what users ran into, per support case category.

For the cases opened in the period: how many per category, how many resolved and still
active, the SLA breach rate and the median time to resolve, and which finding kinds opened
them.  The default period is the last 7 days (the weekly view).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime

DAY_MS = 86_400_000


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="reports from the action layer's store")
    what = p.add_subparsers(dest="report", required=True, metavar="REPORT")
    c = what.add_parser("cases", help="support cases per category: volume, SLA breaches, time to resolve")
    c.add_argument("--since", type=_date_ms, help="first day (YYYY-MM-DD, UTC) or RFC 3339 time; default 7 days ago")
    c.add_argument("--until", type=_date_ms, help="end (exclusive), same formats; default now")
    c.add_argument("--config", help="YAML config (store URL, SLAs)")
    c.add_argument("--store", help="override store.url (SQLAlchemy URL)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_cases)


def _date_ms(text: str) -> int:
    try:
        if len(text) == 10:
            return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (YYYY-MM-DD or RFC 3339)") from None
    if dt.tzinfo is None:
        raise argparse.ArgumentTypeError(f"a time needs an offset: {text!r}")
    return int(dt.timestamp() * 1000)


def duration(ms: int | None) -> str:
    """``1d 3h``, ``2h 05m``, ``7m``; ``-`` for none."""
    from secmon.alerts.sla import format_duration

    return "-" if ms is None else format_duration(ms)


def run_cases(args: argparse.Namespace) -> int:
    from secmon.alerts.cases import CaseService, CaseStore
    from secmon.alerts.settings import parse
    from secmon.alerts.sla import SlaPolicy
    from secmon.config import load_config
    from secmon.store.db import open_database

    config = load_config(args.config, {"store": {"url": args.store}} if args.store else None)
    settings = parse(config.alerts)
    engine = open_database(config.store.url.reveal())
    try:
        service = CaseService(engine, CaseStore(SlaPolicy.from_settings(settings.cases), settings.cases))
        now = int(time.time() * 1000)
        since = args.since if args.since is not None else now - 7 * DAY_MS
        report = service.report(since, args.until)
    finally:
        engine.dispose()
    if args.json:
        doc = asdict(report)
        for row in [doc["total"], *doc["categories"]]:
            row["breach_rate"] = round(row["breached"] / row["opened"], 4) if row["opened"] else 0.0
        print(json.dumps(doc, indent=2))
        return 0
    print(f"Support cases opened {_day(report.since_ms)} → {_day(report.until_ms)} (UTC)\n")
    header = f"{'category':<24}{'opened':>8}{'resolved':>10}{'active':>8}{'SLA breached':>14}{'breach rate':>13}" \
             f"{'median to resolve':>19}"  # fmt: skip
    print(header)
    print("-" * len(header))
    for s in [*report.categories, report.total]:
        if s is report.total:
            print("-" * len(header))
        print(f"{s.title:<24}{s.opened:>8}{s.resolved:>10}{s.active:>8}{s.breached:>14}"
              f"{s.breach_rate:>12.1%} {duration(s.median_resolve_ms):>18}")  # fmt: skip
    if report.kinds:
        print("\nWhat opened them (finding kind):")
        for kind, n in report.kinds.items():
            print(f"  {kind:<26}{n:>6}")
    return 0


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
