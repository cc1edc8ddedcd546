"""``secmon eval DIR``: replay DIR/events.jsonl through the enabled detectors and score the
findings against DIR/labels.json (the simulator's labels, or PaySim's ``fraud_tx_ids``).

Prints a per-kind table and writes an HTML report (default DIR/report.html).  The exit
code is 0 whatever the scores: it is a report; kinds below the bar are named on stderr's
last lines.  Matching rules: :mod:`secmon.sim.evaluate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from secmon.config import load_config
from secmon.detectors.registry import resolve
from secmon.engine.pipeline import Pipeline
from secmon.runtime.replay import replay, write_findings
from secmon.sim import evaluate as ev
from secmon.sim import report


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("eval", help="replay a simulated (or PaySim-mapped) directory and score the findings")
    p.add_argument("dir", help="directory with events.jsonl and labels.json")
    p.add_argument("--config", help="YAML config (detector options)")
    p.add_argument("--report", help="HTML report path (default DIR/report.html)")
    p.add_argument("--paysim", action="store_true", help="labels are PaySim's fraud_tx_ids (auto-detected too)")
    p.add_argument("--slack-minutes", type=float, default=ev.DEFAULT_SLACK_MS / 60_000,
                   help="time slack when matching findings to scenarios (default 60)")  # fmt: skip
    p.add_argument("--score-key", default="score", help="explanation key of the anomaly score (default score)")
    p.add_argument("--findings", help="also write the findings (JSON Lines)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    events_path, labels_path = root / "events.jsonl", root / "labels.json"
    for path in (events_path, labels_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found (make one with `secmon simulate --out {root}`)")
    config = load_config(args.config)
    pipeline = Pipeline(
        resolve(config.detectors),
        allowed_lateness_ms=config.engine.allowed_lateness_ms,
        cold_after_ms=config.engine.cold_after_ms,
        cold_above_accounts=config.engine.cold_above_accounts,
    )
    first = ev.FirstDetections()
    result = replay(
        [events_path], pipeline, max_event_bytes=config.engine.max_event_bytes,
        batch_size=config.engine.replay_batch_size, progress=False if args.no_progress else None, on_finding=first,
    )  # fmt: skip
    if args.findings:
        with open(args.findings, "wb") as out:
            write_findings(result.findings, out)
    summary = (
        f"{result.events} events replayed in {result.seconds:.1f}s ({result.events_per_second:,.0f}/s), "
        f"{result.dead_letters} dead letters, {len(result.findings)} findings; "
        f"detectors: {', '.join(s.name for s in pipeline.specs) or 'none'}"
    )
    print(summary, file=sys.stderr)
    doc = ev.load_labels_document(labels_path)
    meta: dict[str, Any] = {"dataset": str(root), "summary": summary}
    report_path = Path(args.report) if args.report else root / "report.html"
    txs = ev.transaction_index(events_path)
    if args.paysim or ev.is_paysim(doc):
        pe = ev.evaluate_paysim(result.findings, doc, txs)
        curves = ev.score_samples(result.findings, txs, set(doc.get("fraud_tx_ids") or ()), set(), args.score_key)
        meta["curves_note"] = _curves_note(curves, args.score_key)
        print(report.paysim_text(pe))
        print(meta["curves_note"])
        report_path.write_text(report.paysim_html(pe, meta, curves), encoding="utf-8")
        print(f"report: {report_path}", file=sys.stderr)
        return 0
    labels = ev.parse_labels(doc)
    evaluation = ev.evaluate(result.findings, labels, pipeline.kinds(), int(args.slack_minutes * 60_000), first.first_ms)
    positives, neutral = ev.simulator_tx_sets(labels)
    curves = ev.score_samples(result.findings, txs, positives, neutral, args.score_key)
    meta["curves_note"] = _curves_note(curves, args.score_key)
    print(report.text_report(evaluation, meta))
    anchors = [s.anchor_ms for s in labels.scenarios]
    report_path.write_text(report.html_report(evaluation, meta, curves, anchors), encoding="utf-8")
    print(f"report: {report_path}", file=sys.stderr)
    below = evaluation.below_bar()
    if below:
        print("below the bar: " + ", ".join(k.kind for k in below), file=sys.stderr)
    return 0


def _curves_note(curves: ev.ScoreCurves | None, key: str) -> str:
    if curves is None:
        return (f"PR/ROC skipped: no anomalous_transaction finding carries a numeric explanation[{key!r}] "
                "(no such detector enabled, or it names its score differently: see --score-key).")  # fmt: skip
    auc = "-" if curves.roc_auc is None else f"{curves.roc_auc:.3f}"
    ap = "-" if curves.average_precision is None else f"{curves.average_precision:.3f}"
    return (f"anomaly score explanation[{key!r}]: {curves.flagged} transactions flagged, {curves.positives} labelled "
            f"positives among {len(curves.y_true)}; average precision {ap}, ROC-AUC {auc} "
            "(unflagged transactions tied below every emitted score)")  # fmt: skip
