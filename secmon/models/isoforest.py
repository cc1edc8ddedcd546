"""An IsolationForest together with the feature schema it was fitted on.

File format (``secmon train --out MODEL``): ``MODEL`` is a joblib pickle of a dict
``{"format": "secmon.isoforest", "format_version": 1, "meta": {...}, "forest": IsolationForest}``;
``MODEL.json`` beside it is a readable copy of ``meta`` for people and tooling (the loader
trusts only the pickle).  ``meta`` holds the feature schema (names, order, parameters and
their hash), the training window (first/last event time), row count, contamination, the
score threshold and the tail of the training scores above it, the population priors and
the library versions.

A pickle runs code when loaded: only load model files you produced (``model_path`` is an
operator setting, like the config file itself).

The loader refuses a model whose feature schema differs from the one the running code
computes: a forest fitted on other features would score garbage silently.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

FORMAT: Final = "secmon.isoforest"
FORMAT_VERSION: Final = 1
TAIL_POINTS: Final = 21
REQUIRED_META: Final = ("feature_schema", "score_threshold", "score_tail", "contamination", "priors")


class ModelError(ValueError):
    """A model file that cannot be used: missing, not ours, or fitted on other features."""


@dataclass(frozen=True)
class ForestModel:
    """A fitted forest (read-only once loaded, so tasks may share it) and its metadata."""

    forest: Any
    meta: dict[str, Any]

    @property
    def threshold(self) -> float:
        """Anomaly score at or above which the model calls a row anomalous."""
        return float(self.meta["score_threshold"])

    def evidence(self, score: float) -> float:
        """How far ``score`` lies into the tail of the training scores: 0 at the threshold (the
        contamination quantile), 1 at or beyond the strangest training row, linear in between
        the stored quantiles.  A rank, so it does not depend on the forest's score scale."""
        tail = self.meta["score_tail"]
        if score <= tail[0]:
            return 0.0
        if score >= tail[-1]:
            return 1.0
        i = bisect_right(tail, score)
        lo, hi = tail[i - 1], tail[i]
        return (i - 1 + ((score - lo) / (hi - lo) if hi > lo else 1.0)) / (len(tail) - 1)

    @property
    def schema_hash(self) -> str:
        return str(self.meta["feature_schema"]["hash"])

    def anomaly_scores(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """Anomaly score of each row (``-score_samples``: in (0, 1), higher is stranger)."""
        import numpy as np

        return (-self.forest.score_samples(np.asarray(rows, dtype=np.float64))).tolist()


def fit_forest(
    rows: Sequence[Sequence[float]],
    *,
    contamination: float,
    n_estimators: int,
    max_samples: int,
    seed: int,
    meta: dict[str, Any],
) -> ForestModel:
    """Fit an IsolationForest; the threshold is the training score at ``contamination``."""
    import numpy as np
    import sklearn
    from sklearn.ensemble import IsolationForest

    if not 0.0 < contamination < 0.5:
        raise ValueError(f"contamination must be in (0, 0.5), got {contamination}")
    x = np.asarray(rows, dtype=np.float64)
    forest = IsolationForest(
        n_estimators=n_estimators,
        max_samples=min(max_samples, len(x)),
        contamination=contamination,
        random_state=seed,
    ).fit(x)
    scores = -forest.score_samples(x)
    meta = {
        **meta,
        "rows": len(x),
        "contamination": contamination,
        "score_threshold": float(-forest.offset_),
        #: Training scores at quantiles 1 - contamination ... 1 (see ``ForestModel.evidence``).
        "score_tail": [float(v) for v in np.quantile(scores, np.linspace(1 - contamination, 1.0, TAIL_POINTS))],
        "n_estimators": n_estimators,
        "max_samples": min(max_samples, len(x)),
        "seed": seed,
        "sklearn_version": sklearn.__version__,
    }
    return ForestModel(forest, meta)


def save_model(model: ForestModel, path: str | Path) -> Path:
    """Write the model and its JSON sidecar; returns the sidecar's path."""
    import joblib

    path = Path(path)
    joblib.dump({"format": FORMAT, "format_version": FORMAT_VERSION, "meta": model.meta, "forest": model.forest}, path)
    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text(json.dumps(model.meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return sidecar


def load_model(path: str | Path, schema: dict[str, Any]) -> ForestModel:
    """Load ``path`` and check it was fitted on ``schema`` (see ``tx_profile.feature_schema``)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as exc:
        raise ModelError(f"model {path}: {exc.strerror}") from None
    model = _load(real, st.st_mtime_ns, st.st_size)
    check_schema(model, schema, str(path))
    return model


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> ForestModel:
    """One load per file version, shared by config validation and every task."""
    import joblib

    try:
        blob = joblib.load(path)
    except Exception as exc:  # a truncated or foreign file: say so, do not crash obscurely
        raise ModelError(f"model {path}: not a readable model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"model {path}: not a {FORMAT} file")
    if blob.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"model {path}: format version {blob.get('format_version')}, this secmon reads {FORMAT_VERSION}; "
            "retrain it with `secmon train`"
        )
    missing = [k for k in REQUIRED_META if k not in blob.get("meta", {})]
    if missing or not hasattr(blob.get("forest"), "score_samples"):
        raise ModelError(f"model {path}: incomplete (missing {missing or ['forest']}); retrain it with `secmon train`")
    return ForestModel(blob["forest"], blob["meta"])


def check_schema(model: ForestModel, schema: dict[str, Any], where: str) -> None:
    """Refuse a model fitted on other features, naming what differs."""
    have = model.meta.get("feature_schema") or {}
    if have.get("hash") == schema["hash"]:
        return
    diffs: list[str] = []
    if have.get("names") != schema["names"]:
        diffs.append(f"features {have.get('names')} != {schema['names']}")
    if have.get("version") != schema["version"]:
        diffs.append(f"feature version {have.get('version')} != {schema['version']}")
    old, new = have.get("params") or {}, schema["params"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            diffs.append(f"{key}: model {old.get(key)!r}, config {new.get(key)!r}")
    raise ModelError(
        f"model {where} was fitted on feature schema {have.get('hash')} but this configuration computes "
        f"{schema['hash']} ({'; '.join(diffs) or 'hash differs'}); retrain it with `secmon train` "
        "using the same detector options"
    )
