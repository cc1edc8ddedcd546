"""Fitting the ``anomalous_transaction`` model on history (what ``secmon train`` runs).

The history is replayed through the detector's own feature code
(:func:`secmon.detectors.tx_profile.observe` via ``AnomalousTransaction.observe``), in event
time order, so each training row is exactly what the live detector would have computed at
that moment.  Two passes over the files: the first derives the population priors (median
and MAD of log10 amount per asset), which the features of accounts still warming up use;
the second computes the feature rows and fits the forest.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from secmon.contract import BadRecord, EventDecoder, TransferSent, WithdrawalRequested, iso_ms, money
from secmon.detectors.anomalous_transaction import AnomalousTransaction, AnomalousTransactionConfig
from secmon.detectors.common import HOUR_MS
from secmon.detectors.tx_profile import Observation, Priors, feature_schema, is_outgoing
from secmon.models.isoforest import ForestModel, fit_forest
from secmon.sources.files import JsonLinesSource

#: Assets with fewer training rows than this use the overall prior.
MIN_ASSET_ROWS = 50


def outgoing_events(
    paths: Sequence[str | Path], *, max_event_bytes: int = 64 * 1024, progress: bool = False, desc: str = ""
) -> Iterator[WithdrawalRequested | TransferSent]:
    """The withdrawals and transfers of ``paths`` in event-time order (bad records skipped)."""
    source = JsonLinesSource(list(paths))
    decode = EventDecoder(max_event_bytes).decode
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=source.count_lines(), unit="ev", unit_scale=True, desc=desc, file=sys.stderr)
    try:
        for _, _, raw in source:
            if bar is not None:
                bar.update()
            try:
                event = decode(raw)
            except BadRecord:
                continue
            if is_outgoing(event):
                yield event  # type: ignore[misc]
    finally:
        if bar is not None:
            bar.close()


def fit_priors(events: Iterator[WithdrawalRequested | TransferSent]) -> Priors:
    """Population median/MAD of log10(amount_usd), per asset and overall."""
    import numpy as np

    by_asset: dict[str, array[float]] = {}
    for event in events:
        usd = max(money(event.payload.amount_usd), 0.01)
        by_asset.setdefault(event.payload.asset, array("d")).append(usd)

    def median_mad(values: Any) -> tuple[float, float]:
        x = np.log10(np.asarray(values))
        med = float(np.median(x))
        return med, float(np.median(np.abs(x - med)))

    if not by_asset:
        raise ValueError("no withdrawals or transfers in the training files")
    overall = median_mad(np.concatenate([np.frombuffer(a, dtype=np.float64) for a in by_asset.values()]))
    return Priors(
        overall[0],
        overall[1],
        {a: median_mad(v) for a, v in sorted(by_asset.items()) if len(v) >= MIN_ASSET_ROWS},
    )


def observations(
    detector: AnomalousTransaction, events: Iterator[WithdrawalRequested | TransferSent]
) -> Iterator[tuple[WithdrawalRequested | TransferSent, Observation]]:
    """Each event with its observation (features included), profiles updated as the live
    detector does."""
    detector.features_from = 0.0
    next_expiry = 0
    for event in events:
        if event.ts >= next_expiry:  # idle profiles expire as in a task (bounded memory)
            detector.state.expire(event.ts)
            next_expiry = event.ts + HOUR_MS
        yield event, detector.observe(event)


def train(
    paths: Sequence[str | Path],
    config: AnomalousTransactionConfig,
    *,
    contamination: float = 0.01,
    n_estimators: int = 100,
    max_samples: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> ForestModel:
    """Fit the forest on the outgoing transactions of ``paths``."""
    if config.model_path:
        raise ValueError("train from a config without model_path (the features must not depend on a model)")
    priors = fit_priors(outgoing_events(paths, progress=progress, desc="priors"))
    detector = AnomalousTransaction(config, priors=priors)
    rows: list[tuple[float, ...]] = []
    first = last = None
    for event, obs in observations(detector, outgoing_events(paths, progress=progress, desc="features")):
        rows.append(obs.features)
        first = event.ts if first is None else first
        last = event.ts
    assert first is not None and last is not None  # fit_priors saw at least one row
    meta = {
        "detector": AnomalousTransaction.name,
        "feature_schema": feature_schema(config.feature_params()),
        "priors": priors.to_dict(),
        "training": {
            "files": [Path(p).name for p in paths],
            "first_event_at": iso_ms(first),
            "last_event_at": iso_ms(last),
        },
        "secmon_version": version("secmon"),
    }
    return fit_forest(
        rows, contamination=contamination, n_estimators=n_estimators, max_samples=max_samples, seed=seed, meta=meta
    )
