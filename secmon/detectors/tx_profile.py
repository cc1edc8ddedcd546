"""Per-account transaction profiles and the feature vector of ``anomalous_transaction``.

One module computes the features for both the live detector and ``secmon train``, so a
model is always fitted on exactly the numbers it will later score (no training/serving
skew).  Everything here is pure: a profile is a small msgspec struct, time is the event's.

The profile of an account (bounded; under 1 KB measured, see ``bench/tx_cost.py``):

- ``amts``: per asset (at most ``max_assets``, least recently used evicted) the last
  ``reservoir_size`` amounts as centi-log10 USD (int16).  Median and MAD of that sliding
  window are the robust centre and spread (a sliding window adapts to a user whose habits
  change; a random reservoir would not).
- ``dests``: the 32-bit CRCs (packed) of the last ``max_addresses`` destinations (addresses, or
  ``acct:<id>`` for internal transfers), most recent last: no address is stored in clear.
- ``hours``: a 24-slot histogram (UTC hour, saturating at 255) of past transactions.
- ``rts``/``rusd``: outgoing transactions of the last 24 h (velocity).
- ``flagged``: the last few transactions kept out of the baseline (24 h), so that retrying
  the same amount to the same destination is recognised as a retry.

A transaction the statistics already flag (statistical score at or above the review
threshold) is *not* folded into the amount, destination and hour baselines — anomalies do
not train the baseline (river's ``QuantileFilter(protect_anomaly_detector=True)``).  That
decision uses only the statistics, never the model score, so it does not depend on where
micro-batch boundaries fall.  Velocity counts every transaction: it measures what left.

Feature vector (:data:`FEATURE_NAMES`, in this order; the model file stores the names,
the feature parameters and :func:`schema_hash`):

==================  ======================================================================
log_amount_usd      log10(1 + amount_usd)
amount_z            robust z of log10(amount) against the baseline: the account's amounts of
                    every asset (USD values compare across assets) once it has 2 — or of
                    this asset alone when it has ``warmup_n`` and their median is higher —
                    else the population prior: (x − median) / (1.4826 · max(MAD, floor)),
                    clipped to ±20; MAD floor 0.05 (×1.12), 0.2 (×1.6) under ``warmup_n``
balance_share       (amount + fee) / balance_usd_before, clipped to [0, 2]; 0 when absent
drain               1 when amount (+ fee) is the whole balance (± ``drain_tolerance``)
new_destination     1 when the destination is not among the account's known ones
hour_rarity         share of the account's past transactions more than 1 h from this hour
                    of day (0 without history)
count_1h            outgoing transactions in the last hour, this one included
usd_24h_ratio       log10(1 + USD out in 24 h, this one included / baseline median USD)
history_n           log2(1 + transactions folded into the baseline)
is_transfer         1 for ``transfer.sent``, 0 for ``withdrawal.requested``
==================  ======================================================================

The statistical score is a noisy-OR of explainable deviations (each a probability-like
weight: "how much this alone suggests misuse"), so it is in [0, 1] and each part can be
shown to a person: balance drain 0.9; moving ≥ half the balance up to 0.5; an amount above
the account's median (and robust z ≥ 3) from 3×, rising with the log ratio to 0.85 at 20×
(from 5× to 50× while the account has fewer than ``warmup_n`` amounts; against the
population prior, with none or one, from 10× to only 0.45 at 100×); a new destination 0.3
and an unusual hour 0.2 (only once warmed up); velocity 0.4 (``velocity_1h_max``
transactions in an hour, or many ordinary amounts adding up to ``velocity_24h_ratio`` × the
median in a day).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from secmon.contract import TransferSent, WithdrawalRequested, money
from secmon.detectors.base import KeyState
from secmon.detectors.common import DAY_MS, HOUR_MS

assert array("I").itemsize == 4, "packed CRCs are 32-bit"

#: Bump when the meaning of a feature or of a statistical weight changes.
FEATURE_VERSION: Final = 1
FEATURE_NAMES: Final = (
    "log_amount_usd",
    "amount_z",
    "balance_share",
    "drain",
    "new_destination",
    "hour_rarity",
    "count_1h",
    "usd_24h_ratio",
    "history_n",
    "is_transfer",
)

# Weights of the explainable deviations (see the module docstring).
W_DRAIN: Final = 0.9
W_SHARE: Final = 0.5
W_AMOUNT: Final = 0.85
W_AMOUNT_COLD: Final = 0.45
W_NEW_DEST: Final = 0.3
W_HOUR: Final = 0.2
W_VELOCITY: Final = 0.4
#: Ratio to the baseline median where the amount starts to count, and where its weight is
#: full (rising with log ratio in between): own baseline / population prior.
AMOUNT_RATIO_FROM: Final = 3.0
AMOUNT_RATIO_FULL: Final = 20.0
AMOUNT_RATIO_FROM_COLD: Final = 10.0
AMOUNT_RATIO_FULL_COLD: Final = 100.0
AMOUNT_RATIOS_EARLY: Final = (5.0, 50.0)  # own baseline of fewer than warmup_n amounts
#: Robust z below which an amount is within the account's own spread.
AMOUNT_MIN_Z: Final = 3.0
MAD_FLOOR: Final = 0.05  # log10 units: a whale sending the same amount has MAD 0
MAD_FLOOR_EARLY: Final = 0.2  # fewer than warmup_n amounts: their spread is not known yet
MIN_OWN_AMOUNTS: Final = 2
RECENT_CAP: Final = 48
MAX_FEE_SHARE: Final = 0.1


class FeatureParams(msgspec.Struct, frozen=True, kw_only=True):
    """The options that change what a feature means; a model is fitted for one set."""

    warmup_n: int = 5
    reservoir_size: int = 16
    max_assets: int = 4
    max_addresses: int = 32
    drain_tolerance: float = 0.002
    min_drain_usd: float = 10.0
    velocity_1h_max: int = 5
    velocity_24h_ratio: float = 20.0
    #: Statistical score from which a transaction is kept out of the baseline.
    review_threshold: float = 0.5


def schema_hash(params: FeatureParams) -> str:
    """Short hash of the feature names, their order, the version and the parameters."""
    doc = {"names": FEATURE_NAMES, "version": FEATURE_VERSION, "params": msgspec.to_builtins(params)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def feature_schema(params: FeatureParams) -> dict[str, Any]:
    """What a model file records about the features it was fitted on."""
    return {
        "names": list(FEATURE_NAMES),
        "version": FEATURE_VERSION,
        "params": msgspec.to_builtins(params),
        "hash": schema_hash(params),
    }


@dataclass(frozen=True)
class Priors:
    """Population baseline of log10(amount_usd): used for accounts still warming up.

    From the trained model (per asset, fitted on its history) or, without one, from the
    detector config.
    """

    median: float
    mad: float
    by_asset: dict[str, tuple[float, float]] = field(default_factory=dict)

    def of(self, asset: str) -> tuple[float, float]:
        return self.by_asset.get(asset, (self.median, self.mad))

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "mad": self.mad, "by_asset": {k: list(v) for k, v in self.by_asset.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Priors:
        return cls(
            float(d["median"]), float(d["mad"]), {k: (float(v[0]), float(v[1])) for k, v in d["by_asset"].items()}
        )


def _median(ordered: list[int] | list[float]) -> float:
    n = len(ordered)
    h = n // 2
    return ordered[h] if n % 2 else (ordered[h - 1] + ordered[h]) / 2


def _mad(ordered: list[int], med: float) -> float:
    """Median absolute deviation from ``med`` (the robust spread)."""
    return _median(sorted([abs(v - med) for v in ordered]))


def _robust_z(x: float, med: float, mad: float, floor: float) -> float:
    return max(-20.0, min(20.0, (x - med) / (1.4826 * max(mad, floor))))


class TxProfile(KeyState, kw_only=True, gc=False, array_like=True):
    """One account's behaviour (see the module docstring for each field and its bound)."""

    n: int = 0
    amts: dict[str, bytes] = {}
    dests: bytes = b""  # uint32 CRCs, most recent last
    hours: bytearray = msgspec.field(default_factory=lambda: bytearray(24))
    # Tuples, rebuilt on each transaction: a few entries each, and smaller than lists.
    rts: tuple[int, ...] = ()
    rusd: tuple[float, ...] = ()
    #: (destination CRC << 16 | centi-log amount, time) of recent transactions kept out of the
    #: baseline: an identical one within 24 h is a retry, not a new anomaly.
    flagged: tuple[tuple[int, int], ...] = ()  # a tuple: empty (shared) for most accounts


@dataclass(slots=True)
class Deviation:
    """One explainable deviation: what was observed against which baseline, and its weight.

    The sentence is rendered only for a finding (``text``): most deviations never become one.
    ``args`` are immutable snapshots, since the profile moves on before the batch ends."""

    feature: str
    weight: float
    observed: Any
    baseline: Any
    template: str
    args: tuple[Any, ...] = ()

    @property
    def text(self) -> str:
        return self.template.format(*self.args)

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "observed": _rounded(self.observed),
            "baseline": _rounded(self.baseline),
            "weight": round(self.weight, 3),
            "text": self.text,
        }


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


@dataclass(slots=True)
class Observation:
    """Features and statistical score of one outgoing transaction, before it is folded in."""

    features: tuple[float, ...]
    stat_score: float
    deviations: list[Deviation]
    baseline: str  # "account" or "population"
    baseline_n: int  # amounts behind the baseline (0 for the population prior)
    history_n: int
    # Computed once here, reused by ``fold``.
    usd: float
    centi: int
    dest: int
    new_dest: bool
    retry: bool  # the same amount to the same destination as a flagged transaction, within 24 h


def is_outgoing(event: object) -> bool:
    return isinstance(event, WithdrawalRequested | TransferSent)


def _destination_hash(event: WithdrawalRequested | TransferSent, is_withdrawal: bool) -> int:
    p = event.payload
    dest = p.to_address if is_withdrawal else "acct:" + p.to_account  # type: ignore[union-attr]
    return zlib.crc32(dest.encode())


def _centilog(usd: float) -> int:
    """log10(USD) in hundredths, clamped to int16 (sub-cent amounts count as one cent)."""
    return max(-200, min(3000, round(math.log10(max(usd, 0.01)) * 100)))


def _usual_hours(hours: bytearray) -> str:
    """Hours of day with history, as ranges ("08–11, 19–22 UTC")."""
    spans: list[str] = []
    h = 0
    while h < 24:
        if hours[h]:
            start = h
            while h + 1 < 24 and hours[h + 1]:
                h += 1
            spans.append(f"{start:02d}" if start == h else f"{start:02d}–{h:02d}")
        h += 1
    return ", ".join(spans) + " UTC" if spans else "none"


def observe(
    profile: TxProfile,
    event: WithdrawalRequested | TransferSent,
    params: FeatureParams,
    priors: Priors,
    features_from: float = 0.0,
) -> Observation:
    """Statistical score of ``event`` against ``profile`` as it is now, and its features when
    the score reaches ``features_from`` (the live detector needs them only for the model's
    candidates; training wants them all).  Skipping them never changes the score."""
    p = event.payload
    ts = event.ts
    is_withdrawal = type(event) is WithdrawalRequested
    usd = money(p.amount_usd)
    asset = p.asset
    n = profile.n
    warm = n >= params.warmup_n
    centi = _centilog(usd)
    x = centi / 100

    # Amount against the account's own amounts (USD values compare across assets), and
    # against this asset's alone once it has enough: large only if large for both.
    amts = profile.amts
    packed = amts.get(asset)
    window = array("h")
    if len(amts) == 1 and packed is not None:
        window.frombytes(packed)
    else:
        for other in amts.values():
            window.frombytes(other)
    own_n = len(window)
    own = own_n >= MIN_OWN_AMOUNTS
    mad = -1.0  # the spread is computed only when needed (amount far from the centre, features)
    ordered: list[int] = []
    if own:
        ordered = sorted(window)
        med = _median(ordered)
        if len(amts) > 1 and packed is not None and len(packed) // 2 >= params.warmup_n:
            ordered_a = sorted(array("h", packed))  # type: ignore[arg-type]
            med_a = _median(ordered_a)
            if med_a > med:
                ordered, med = ordered_a, med_a
        med /= 100
        mad_floor = MAD_FLOOR if own_n >= params.warmup_n else MAD_FLOOR_EARLY
        # Few amounts so far: their median is a rough guess, so it takes a larger ratio.
        lo, hi = (AMOUNT_RATIO_FROM, AMOUNT_RATIO_FULL) if own_n >= params.warmup_n else AMOUNT_RATIOS_EARLY
    else:
        own_n = 0
        med, mad = priors.of(asset)
        mad_floor = MAD_FLOOR
        lo, hi = AMOUNT_RATIO_FROM_COLD, AMOUNT_RATIO_FULL_COLD
    median_usd = 10**med
    ratio = usd / median_usd if median_usd > 0 else 0.0
    z = 0.0
    if ratio >= lo:
        if mad < 0:
            mad = _mad(ordered, med * 100) / 100
        z = _robust_z(x, med, mad, mad_floor)
    devs: list[Deviation] = []
    if own:
        if z >= AMOUNT_MIN_Z and ratio >= lo:
            w = W_AMOUNT * min(1.0, math.log(ratio / lo) / math.log(hi / lo))
            if w > 0:
                few = f" ({own_n} transactions so far)" if own_n < params.warmup_n else ""
                devs.append(Deviation("amount_usd", w, usd, median_usd, "amount {:.0f}× the account's median{}",
                                      (ratio, few)))  # fmt: skip
    elif z >= AMOUNT_MIN_Z and ratio >= lo:
        w = W_AMOUNT_COLD * min(1.0, math.log(ratio / lo) / math.log(hi / lo))
        if w > 0:
            devs.append(Deviation("amount_usd", w, usd, median_usd,
                                  "amount {:.0f}× the typical amount (population, account still new)", (ratio,)))  # fmt: skip

    amount_flagged = bool(devs)

    # Share of the balance moved; the whole balance is a drain.
    share = 0.0
    drain = False
    balance = money(p.balance_usd_before) if p.balance_usd_before is not None else 0.0
    if balance > 0:
        fee_usd = 0.0
        if is_withdrawal and usd * (1.0 + MAX_FEE_SHARE) >= balance:
            # Near the whole balance, the fee may make up the rest.  The contract does not say
            # its unit; read in units of the asset, it is a network fee only if small next to
            # the amount (else it is ignored).
            amount = money(p.amount)
            fee_usd = money(p.fee) * usd / amount if amount > 0 else 0.0  # type: ignore[union-attr]
            if fee_usd > MAX_FEE_SHARE * usd:
                fee_usd = 0.0
        out = usd + fee_usd
        share = min(2.0, out / balance)
        tol = params.drain_tolerance * balance
        drain = balance >= params.min_drain_usd and (abs(out - balance) <= tol or abs(usd - balance) <= tol)
        if drain:
            devs.append(Deviation("balance_share", W_DRAIN, share, 1.0, "drains the balance ({:,.2f} of {:,.2f} USD)",
                                  (out, balance)))  # fmt: skip
        elif 0.5 <= share <= 1.0:
            devs.append(Deviation("balance_share", W_SHARE * min(1.0, (share - 0.5) / 0.45), share, None,
                                  "moves {:.0%} of the balance", (share,)))  # fmt: skip

    dest = _destination_hash(event, is_withdrawal)
    known = array("I", profile.dests)
    new_dest = not profile.dests or dest not in known
    if warm and new_dest:
        what = "address" if is_withdrawal else "recipient"
        devs.append(Deviation("destination", W_NEW_DEST, "new", f"{len(known)} known", "new {} ({} known)",
                              (what, len(known))))  # fmt: skip

    hours = profile.hours
    hour = (ts // HOUR_MS) % 24
    band = hours[hour - 1] + hours[hour] + hours[(hour + 1) % 24]
    if warm and band == 0:
        minute = (ts // 60_000) % 60
        usual = _usual_hours(hours)
        devs.append(Deviation("hour_utc", W_HOUR, hour, usual, "{:02d}:{:02d} UTC is outside usual hours ({})",
                              (hour, minute, usual)))  # fmt: skip

    # Velocity over 1 h and 24 h (this transaction included).
    rts = profile.rts
    h1 = ts - HOUR_MS
    d1 = ts - DAY_MS
    count_1h = count_24h = 1
    usd_24h = usd
    for t, v in zip(rts, profile.rusd, strict=True):
        if t > d1:
            usd_24h += v
            count_24h += 1
            if t > h1:
                count_1h += 1
    ratio_24h = usd_24h / median_usd if median_usd > 0 else 0.0
    if count_1h >= params.velocity_1h_max:
        devs.append(Deviation("count_1h", W_VELOCITY, count_1h, params.velocity_1h_max,
                              "{} outgoing transactions within 1 h", (count_1h,)))  # fmt: skip
    elif own and not amount_flagged and count_24h >= 3 and ratio_24h >= params.velocity_24h_ratio:
        # Many ordinary amounts adding up (one large amount is already the amount deviation).
        devs.append(Deviation("usd_24h", W_VELOCITY, usd_24h, median_usd,
                              "{:.0f}× the median amount sent within 24 h", (ratio_24h,)))  # fmt: skip

    keep = 1.0
    for d in devs:
        keep *= 1.0 - d.weight
    features: tuple[float, ...] = ()
    if 1.0 - keep >= features_from:
        if ratio < lo:  # the spread was not needed for the score
            if mad < 0:
                mad = _mad(ordered, med * 100) / 100
            z = _robust_z(x, med, mad, mad_floor)
        total = sum(hours) if n else 0
        rarity = 1.0 - band / total if total else 0.0
        features = (
            math.log10(1.0 + usd),
            z,
            share,
            1.0 if drain else 0.0,
            1.0 if new_dest else 0.0,
            rarity,
            float(count_1h),
            math.log10(1.0 + ratio_24h),
            math.log2(1.0 + n),
            0.0 if is_withdrawal else 1.0,
        )
    if len(devs) > 1:
        devs.sort(key=lambda d: -d.weight)
    retry = False
    if profile.flagged:
        retry_key = (dest << 16) | (centi & 0xFFFF)
        retry = any(k == retry_key and t > d1 for k, t in profile.flagged)
    return Observation(
        features, 1.0 - keep, devs, "account" if own else "population", own_n, n, usd, centi, dest, new_dest, retry
    )


def fold(
    profile: TxProfile, event: WithdrawalRequested | TransferSent, obs: Observation, params: FeatureParams
) -> None:
    """Update ``profile`` with ``event``; flagged transactions stay out of the baseline."""
    ts = event.ts
    usd = obs.usd
    # Velocity: every transaction, the last 24 h only.
    rts, rusd = profile.rts, profile.rusd
    horizon = ts - DAY_MS
    drop = 0
    while drop < len(rts) and rts[drop] <= horizon:
        drop += 1
    drop = max(drop, len(rts) + 1 - RECENT_CAP)
    profile.rts = (*rts[drop:], ts)
    profile.rusd = (*rusd[drop:], usd)
    if obs.stat_score >= params.review_threshold:
        key = (obs.dest << 16) | (obs.centi & 0xFFFF)
        profile.flagged = (*((k, t) for k, t in profile.flagged[-3:] if t > horizon and k != key), (key, ts))
        return
    profile.n += 1
    asset = sys.intern(event.payload.asset)  # one string per asset, not one per profile
    amts = profile.amts
    packed = amts.pop(asset, b"")  # re-inserted last: assets are kept in LRU order
    window = array("h", packed)  # type: ignore[arg-type]
    window.append(obs.centi)
    if len(window) > params.reservoir_size:
        del window[0]
    amts[asset] = window.tobytes()
    if len(amts) > params.max_assets:
        del amts[next(iter(amts))]
    dest = obs.dest
    if obs.new_dest or profile.dests[-4:] != dest.to_bytes(4, sys.byteorder):  # not the last one used
        dests = array("I", profile.dests)
        if not obs.new_dest:
            dests.remove(dest)
        dests.append(dest)
        if len(dests) > params.max_addresses:
            del dests[0]
        profile.dests = dests.tobytes()
    hour = (ts // HOUR_MS) % 24
    if profile.hours[hour] < 255:
        profile.hours[hour] += 1
