"""The explicit detector registry: names → classes, configs validated at start-up.

A detector is registered by adding its class to ``DETECTOR_CLASSES`` below; its ``name``
is its key in the YAML ``detectors`` section.  Every registered detector runs with its
defaults unless the config disables it; an unknown name or option fails at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secmon.config import ConfigError, convert
from secmon.detectors.account_takeover import AccountTakeover
from secmon.detectors.anomalous_transaction import AnomalousTransaction
from secmon.detectors.base import Detector, DetectorConfig, Scope
from secmon.detectors.brute_force import BruteForce
from secmon.detectors.credential_attacks import CredentialAttacks
from secmon.detectors.deposit_delayed import DepositDelayed
from secmon.detectors.impossible_travel import ImpossibleTravel
from secmon.detectors.mfa_bruteforce import MfaBruteforce
from secmon.detectors.mfa_posture import MfaPosture
from secmon.detectors.mfa_secret_reuse import MfaSecretReuse
from secmon.detectors.mfa_weak_secret import MfaWeakSecret
from secmon.detectors.weak_password import WeakPassword
from secmon.detectors.withdrawal_failures import WithdrawalFailures
from secmon.detectors.withdrawal_outage import WithdrawalOutage

DETECTOR_CLASSES: tuple[type[Detector[Any, Any]], ...] = (
    WeakPassword,
    BruteForce,
    CredentialAttacks,
    ImpossibleTravel,
    MfaBruteforce,
    MfaPosture,
    MfaWeakSecret,
    MfaSecretReuse,
    AnomalousTransaction,
    AccountTakeover,
    DepositDelayed,
    WithdrawalFailures,
    WithdrawalOutage,
)

REGISTRY: dict[str, type[Detector[Any, Any]]] = {cls.name: cls for cls in DETECTOR_CLASSES}


@dataclass(frozen=True)
class DetectorSpec:
    """An enabled detector: its class and validated, frozen config."""

    cls: type[Detector[Any, Any]]
    config: DetectorConfig

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def scope(self) -> Scope:
        return self.cls.scope

    def build(self) -> Detector[Any, Any]:
        return self.cls(self.config)


def resolve(section: dict[str, dict[str, Any]] | None) -> list[DetectorSpec]:
    """Validate the ``detectors`` config section and return the enabled detectors."""
    section = section or {}
    unknown = sorted(set(section) - set(REGISTRY))
    if unknown:
        raise ConfigError(f"detectors: unknown detector(s) {unknown}; known: {sorted(REGISTRY)}")
    specs = []
    for name, cls in REGISTRY.items():
        options = section.get(name) or {}
        config = convert(options, cls.Config, f"detectors.{name}")
        if config.enabled:
            specs.append(DetectorSpec(cls, config))
    return specs
