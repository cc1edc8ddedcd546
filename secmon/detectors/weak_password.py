"""``weak_password``: a password was set that is known breached or very weak.

The simplest detector, and the example to copy: one event type in, at most one finding
out, no state.  The finding nudges the user to choose a long, unique password.
"""

from __future__ import annotations

from secmon.contract import PasswordChanged
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState


class WeakPasswordConfig(DetectorConfig, frozen=True, kw_only=True):
    #: zxcvbn-style strength at or below which a password counts as very weak (0–4).
    max_weak_strength: int = 1


class WeakPassword(Detector[WeakPasswordConfig, KeyState]):
    name = "weak_password"
    kinds = ("weak_password",)
    event_types = frozenset({"password.changed"})
    Config = WeakPasswordConfig

    def on_event(self, event: PasswordChanged, ctx: Context) -> None:
        p = event.payload
        weak = p.strength <= self.config.max_weak_strength
        if not (p.breached or weak):
            return
        reasons = (["found in a breach corpus"] if p.breached else []) + (
            [f"strength {p.strength}/4"] if weak else []
        )
        ctx.emit(
            kind="weak_password",
            severity="medium" if p.breached else "low",
            dedup_key=event.event_id,
            account_id=event.account_id,
            first_seen_ms=event.ts,
            last_seen_ms=event.ts,
            evidence=[event.event_id],
            summary=f"A weak password was set ({' and '.join(reasons)}); the user should choose a long, unique one.",
            explanation={
                "breached": p.breached,
                "strength": p.strength,
                "max_weak_strength": self.config.max_weak_strength,
                "via": p.via,
            },
        )
