"""The explicit detector registry: names → classes, configs validated at start-up.

A detector is registered by adding its class to ``DETECTOR_CLASSES`` below; its ``name``
is its key in the YAML ``detectors`` section.  Every registered detector runs with its
defaults unless the config disables it; an unknown name or option fails at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secmon.config import ConfigError, convert
from secmon.detectors.base import Detector, DetectorConfig, Scope
from secmon.detectors.weak_password import WeakPassword

DETECTOR_CLASSES: tuple[type[Detector[Any, Any]], ...] = (
    WeakPassword,
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
