#!/usr/bin/env python3
"""PaySim check of ``anomalous_transaction``: precision/recall of the findings, ROC-AUC of the scores.

usage:
    python /work/shared/data/paysim/to_events.py paysim_sample_51392.csv /tmp/paysim
    secmon replay /tmp/paysim/events.jsonl --findings /tmp/paysim/findings.jsonl [--config CFG]
    python bench/paysim_check.py /tmp/paysim [--findings FILE] [--model MODEL]

1. Findings: a fraudulent transaction is found when a finding names it in ``subject.tx_id``;
   precision and recall over the fraudulent ``tx_id`` of ``labels.json``.
2. Scores: the outgoing transactions are replayed through the detector's own feature code
   (``secmon.models.tx_training.observations``); ROC-AUC and precision/recall at the
   configured threshold of the statistics-only score (default config, no model) and, with
   ``--model``, of the model's anomaly score alone and of the combined score the detector
   emits on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sklearn.metrics import roc_auc_score

from secmon.contract import decode_finding
from secmon.detectors.anomalous_transaction import AnomalousTransaction, AnomalousTransactionConfig
from secmon.models.tx_training import observations, outgoing_events


def pr(flagged: set[str], truth: set[str]) -> dict[str, float | int]:
    """Precision and recall of the flagged ids."""
    tp = len(flagged & truth)
    return {
        "precision": round(tp / len(flagged), 4) if flagged else 0.0,
        "recall": round(tp / len(truth), 4) if truth else 0.0,
        "flagged": len(flagged),
    }


def above(ids: list[str], scores: list[float], threshold: float) -> set[str]:
    return {i for i, s in zip(ids, scores, strict=True) if s >= threshold}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="output directory of to_events.py (events.jsonl, labels.json)")
    ap.add_argument("--findings", help="findings of secmon replay (default DIR/findings.jsonl if present)")
    ap.add_argument("--model", help="model file of secmon train (scores with it)")
    args = ap.parse_args()
    d = Path(args.dir)
    truth = set(json.loads((d / "labels.json").read_text())["fraud_tx_ids"])
    out: dict[str, object] = {"fraud_transactions": len(truth)}

    findings_path = Path(args.findings) if args.findings else d / "findings.jsonl"
    if findings_path.exists():
        by_kind: dict[str, set[str]] = {}
        for line in findings_path.read_bytes().splitlines():
            f = decode_finding(line)
            if f.subject.tx_id:
                by_kind.setdefault(f.kind, set()).add(f.subject.tx_id)
        every: set[str] = set().union(*by_kind.values())
        out["findings"] = {"file": str(findings_path), "all kinds": pr(every, truth)}
        out["findings"] |= {kind: pr(flagged, truth) for kind, flagged in sorted(by_kind.items())}  # type: ignore[operator]

    events = d / "events.jsonl"
    stat_det = AnomalousTransaction(AnomalousTransactionConfig())
    ids, labels, stat = [], [], []
    for event, obs in observations(stat_det, outgoing_events([events])):
        ids.append(event.payload.tx_id)
        labels.append(event.payload.tx_id in truth)
        stat.append(obs.stat_score)
    thr = stat_det.config.threshold
    scores: dict[str, object] = {"transactions": len(ids), "threshold": thr}
    scores["stat_only"] = {"roc_auc": round(roc_auc_score(labels, stat), 4), **pr(above(ids, stat, thr), truth)}
    if args.model:
        det = AnomalousTransaction(AnomalousTransactionConfig(model_path=args.model))
        model = det.model
        assert model is not None
        # The same features, but against the model's population priors.
        obs_m = [obs for _, obs in observations(det, outgoing_events([events]))]
        model_scores = model.anomaly_scores([o.features for o in obs_m])
        combined = [det.combined(o.stat_score, m)[0] for o, m in zip(obs_m, model_scores, strict=True)]
        scores["stat_with_model_priors"] = {
            "roc_auc": round(roc_auc_score(labels, [o.stat_score for o in obs_m]), 4),
            **pr(above(ids, [o.stat_score for o in obs_m], thr), truth),
        }
        scores["model_only"] = {
            "roc_auc": round(roc_auc_score(labels, model_scores), 4),
            "model_threshold": round(model.threshold, 4),
            **pr(above(ids, model_scores, model.threshold), truth),
        }
        scores["combined"] = {
            "roc_auc": round(roc_auc_score(labels, combined), 4),
            **pr(above(ids, combined, thr), truth),
        }
        scores["model"] = {k: model.meta[k] for k in ("rows", "contamination", "score_threshold", "training")}
    out["scores"] = scores
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
