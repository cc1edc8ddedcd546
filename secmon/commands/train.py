"""``secmon train --input FILE... --out MODEL``: fit the ``anomalous_transaction`` model on history.

The files are replayed through the detector's own feature code (see
``secmon/models/tx_training.py``); the model is written as ``MODEL`` (joblib) with a
readable ``MODEL.json`` sidecar (``secmon/models/isoforest.py`` describes the format).  Use
the same ``--config`` as the service: the feature options are part of the model's schema,
and the service refuses a model fitted on other features.
"""

from __future__ import annotations

import argparse
import sys
import time

from secmon.config import convert, load_config
from secmon.detectors.anomalous_transaction import AnomalousTransaction, AnomalousTransactionConfig


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("train", help="fit the anomalous_transaction model (IsolationForest) on event history")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE", help="JSON Lines files of contract events")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write (plus MODEL.json)")
    p.add_argument("--config", help="YAML config: the detector's feature options (model_path is ignored)")
    p.add_argument("--contamination", type=float, default=0.01, help="expected share of anomalies (default 0.01)")
    p.add_argument("--trees", type=int, default=100, help="number of trees (default 100; scoring cost grows with it)")
    p.add_argument("--max-samples", type=int, default=256, help="rows per tree (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0: reproducible)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from secmon.models.isoforest import save_model
    from secmon.models.tx_training import train

    config = load_config(args.config)
    options = dict(config.detectors.get(AnomalousTransaction.name) or {})
    options.pop("model_path", None)
    det_config = convert(options, AnomalousTransactionConfig, f"detectors.{AnomalousTransaction.name}")
    started = time.perf_counter()
    try:
        model = train(
            args.input,
            det_config,
            contamination=args.contamination,
            n_estimators=args.trees,
            max_samples=args.max_samples,
            seed=args.seed,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except ValueError as exc:  # no usable rows, bad contamination: a one-line error
        print(f"secmon train: {exc}", file=sys.stderr)
        return 2
    sidecar = save_model(model, args.out)
    meta = model.meta
    window = meta["training"]
    print(
        f"trained on {meta['rows']} transactions ({window['first_event_at']} .. {window['last_event_at']}) "
        f"in {time.perf_counter() - started:.1f}s; contamination {meta['contamination']}, score threshold "
        f"{meta['score_threshold']:.4f}, feature schema {meta['feature_schema']['hash']}\n"
        f"wrote {args.out} and {sidecar}",
        file=sys.stderr,
    )
    return 0
