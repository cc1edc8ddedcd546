"""``anomalous_transaction``: a withdrawal or transfer far outside the account's own behaviour.

Each outgoing transaction (``withdrawal.requested``, ``transfer.sent``) is compared with the
account's profile as it is at that moment (:mod:`secmon.detectors.tx_profile`: robust
amount centre/spread of the account and per asset, known destinations, usual hours,
velocity, share of the balance).  That gives, at ``on_event``, a feature vector and an explainable statistical score
``s`` in [0, 1].  New accounts are compared with population priors and get a warm-up grace
(no "new address" or "unusual hour" before ``warmup_n`` transactions).

The score that decides is one number::

    score = 1 - (1 - s) * (1 - model_weight * g)

where ``g`` is the model's evidence: how far the IsolationForest's anomaly score lies in the
tail of the scores of its training history — 0 at the threshold (the training score at the
contamination quantile), 1 beyond the strangest training row.
A finding is emitted when ``score >= threshold``.  Without a model ``g = 0`` and the
score is the statistics alone (a real, documented fallback, not a fake score).  Since
``g <= 1``, a transaction with ``s < 1 - (1 - threshold) / (1 - model_weight)`` (0.5 by
default) cannot reach the threshold whatever the model says, so only the others are sent to
the model: the forest is consulted exactly where it can change the outcome, and its cost
follows the suspicious rows, not the traffic.  A retry (the same amount to the same
destination, within 24 h, as a transaction the statistics flagged) is not reported again.

Scoring is micro-batched: candidates collect during the batch and ``on_batch_end`` makes
one ``score_samples`` call for all of them (a call costs milliseconds fixed — about 5 ms
for 100 trees — and microseconds per row).  The
finding's ``detected_at`` is the transaction's own time, so findings are identical whatever
the batch boundaries; the profile update (flagged transactions stay out of the baseline)
uses only ``s``, for the same reason.  Nothing outside ``self.state`` survives a batch, so a
checkpoint taken after ``on_batch_end`` is complete.
"""

from __future__ import annotations

import math
from typing import Any

from secmon.contract import Subject, TransferSent, WithdrawalRequested, money
from secmon.detectors.base import Context, Detector, DetectorConfig
from secmon.detectors.common import DAY_MS
from secmon.detectors.tx_profile import (
    FEATURE_NAMES,
    FeatureParams,
    Observation,
    Priors,
    TxProfile,
    feature_schema,
    fold,
    observe,
)
from secmon.models.isoforest import ForestModel, load_model

_DEFAULTS = FeatureParams()


class AnomalousTransactionConfig(DetectorConfig, frozen=True, kw_only=True):
    #: Profiles are the baseline: keep an idle account's for a month.
    state_ttl_ms: int = 30 * DAY_MS
    #: A model written by ``secmon train``; without one the statistics decide alone.
    model_path: str | None = None
    #: Emit when the combined score reaches this.
    threshold: float = 0.8
    #: How much a confident model adds to the statistics (see the module docstring).
    model_weight: float = 0.6
    #: Score from which a finding is ``high`` rather than ``medium``.
    high_score: float = 0.95
    #: Population prior when no model is loaded: median amount and log10 spread.
    prior_median_usd: float = 200.0
    prior_log_mad: float = 0.5
    # Feature parameters (a model is fitted for one set of these; see tx_profile).
    warmup_n: int = _DEFAULTS.warmup_n
    reservoir_size: int = _DEFAULTS.reservoir_size
    max_assets: int = _DEFAULTS.max_assets
    max_addresses: int = _DEFAULTS.max_addresses
    drain_tolerance: float = _DEFAULTS.drain_tolerance
    min_drain_usd: float = _DEFAULTS.min_drain_usd
    velocity_1h_max: int = _DEFAULTS.velocity_1h_max
    velocity_24h_ratio: float = _DEFAULTS.velocity_24h_ratio
    review_threshold: float = _DEFAULTS.review_threshold

    def __post_init__(self) -> None:
        for name in ("threshold", "high_score", "review_threshold", "drain_tolerance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.model_weight < 1.0:
            raise ValueError(f"model_weight must be in [0, 1), got {self.model_weight}")
        if min(self.warmup_n, self.reservoir_size, self.max_assets, self.max_addresses) < 1:
            raise ValueError("warmup_n, reservoir_size, max_assets and max_addresses must be >= 1")
        if self.prior_median_usd <= 0 or self.prior_log_mad <= 0:
            raise ValueError("prior_median_usd and prior_log_mad must be > 0")
        if self.model_path:  # refuse a model fitted on other features at start-up
            load_model(self.model_path, feature_schema(self.feature_params()))

    def feature_params(self) -> FeatureParams:
        return FeatureParams(**{f: getattr(self, f) for f in FeatureParams.__struct_fields__})

    @property
    def model_floor(self) -> float:
        """Statistical score below which even full model evidence cannot reach the threshold."""
        return 1.0 - (1.0 - self.threshold) / (1.0 - self.model_weight)


class AnomalousTransaction(Detector[AnomalousTransactionConfig, TxProfile]):
    name = "anomalous_transaction"
    kinds = ("anomalous_transaction",)
    event_types = frozenset({"withdrawal.requested", "transfer.sent"})
    Config = AnomalousTransactionConfig
    State = TxProfile

    def __init__(self, config: AnomalousTransactionConfig, *, priors: Priors | None = None) -> None:
        super().__init__(config)
        self.params = config.feature_params()
        self.model: ForestModel | None = (
            load_model(config.model_path, feature_schema(self.params)) if config.model_path else None
        )
        if priors is None:
            if self.model is not None:
                priors = Priors.from_dict(self.model.meta["priors"])
            else:
                priors = Priors(math.log10(config.prior_median_usd), config.prior_log_mad)
        self.priors = priors
        floor = config.model_floor if self.model is not None else config.threshold
        self._candidate_floor = max(0.0, floor)
        #: Features are computed for candidates only (training sets 0: every row).
        self.features_from = self._candidate_floor
        self._pending: list[tuple[WithdrawalRequested | TransferSent, Observation]] = []

    def observe(self, event: WithdrawalRequested | TransferSent) -> Observation:
        """Statistical score (and, for candidates, features) against the profile as it is,
        then fold the event in."""
        key = event.account_id
        profile = self.state.get(key)
        if profile is None:
            profile = TxProfile()
        obs = observe(profile, event, self.params, self.priors, self.features_from)
        fold(profile, event, obs, self.params)
        self.state.put(key, profile, event.ts)
        return obs

    def on_event(self, event: WithdrawalRequested | TransferSent, ctx: Context) -> None:
        obs = self.observe(event)
        if obs.stat_score >= self._candidate_floor and not obs.retry:
            self._pending.append((event, obs))

    def on_batch_end(self, ctx: Context) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        model = self.model
        scores: list[float | None] = (
            list(model.anomaly_scores([obs.features for _, obs in pending]))
            if model is not None
            else [None] * len(pending)
        )
        for (event, obs), model_score in zip(pending, scores, strict=True):
            self._decide(event, obs, model_score, ctx)

    def combined(self, stat_score: float, model_score: float | None) -> tuple[float, float]:
        """(score, model evidence g) for a statistical score and a model anomaly score."""
        if model_score is None or self.model is None:
            return stat_score, 0.0
        g = self.model.evidence(model_score)
        return 1.0 - (1.0 - stat_score) * (1.0 - self.config.model_weight * g), g

    def _decide(
        self, event: WithdrawalRequested | TransferSent, obs: Observation, model_score: float | None, ctx: Context
    ) -> None:
        cfg = self.config
        score, g = self.combined(obs.stat_score, model_score)
        if score < cfg.threshold:
            return
        p = event.payload
        usd = money(p.amount_usd)
        texts = [d.text for d in obs.deviations]
        if g > 0 and self.model is not None:
            rank = 1.0 - self.model.meta["contamination"] * (1.0 - g)
            texts.append(
                f"the isolation forest rates it {model_score:.2f}, "
                + ("stranger than all" if g >= 1.0 else f"stranger than {rank:.1%}")
                + " of the training history"
            )
        is_withdrawal = isinstance(event, WithdrawalRequested)
        verb = "Withdrawal" if is_withdrawal else "Transfer"
        explanation: dict[str, Any] = {
            "score": round(score, 4),
            "threshold": cfg.threshold,
            "stat_score": round(obs.stat_score, 4),
            "model_score": None if model_score is None else round(model_score, 4),
            "model_evidence": round(g, 4),
            "model_threshold": None if self.model is None else round(self.model.threshold, 4),
            "model_schema": None if self.model is None else self.model.schema_hash,
            "scoring": "statistics+isolation_forest" if self.model is not None else "statistics_only",
            "baseline": obs.baseline,
            "baseline_n": obs.baseline_n,
            "history_n": obs.history_n,
            "warmup_n": cfg.warmup_n,
            "amount_usd": round(usd, 2),
            "asset": p.asset,
            "anomaly_analyses": [d.as_dict() for d in obs.deviations],
            "features": {n: round(v, 4) for n, v in zip(FEATURE_NAMES, obs.features, strict=True)},
        }
        if not is_withdrawal:
            explanation["to_account"] = p.to_account  # type: ignore[union-attr]
        ctx.emit(
            kind="anomalous_transaction",
            severity="high" if score >= cfg.high_score else "medium",
            dedup_key=f"{event.account_id}:{p.tx_id}",
            account_id=event.account_id,
            first_seen_ms=event.ts,
            last_seen_ms=event.ts,
            detected_at_ms=event.ts,
            evidence=[event.event_id],
            summary=f"{verb} of {usd:,.2f} USD (tx {p.tx_id}) is far outside the account's behaviour: "
            + "; ".join(texts)
            + ".",
            explanation=explanation,
            subject=Subject(tx_id=p.tx_id, address=p.to_address if is_withdrawal else None),  # type: ignore[union-attr]
        )
