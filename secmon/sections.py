"""Validation of the config sections owned by other packages (``alerts``, ``api``).

Kept apart from ``secmon.config`` so the core config module imports none of them.
"""

from __future__ import annotations

import importlib
from typing import Any

from secmon.config import Config

#: section name → "module:function" that parses and validates it (raises ConfigError).
#: A validator may return the section's typed form (with ``Secret`` fields), which
#: ``check-config`` prints instead of the raw mapping, so its secrets are masked too.
SECTION_VALIDATORS: dict[str, str] = {
    "alerts": "secmon.alerts.settings:validate",
    "api": "secmon.api.settings:validate",
}


def validate_sections(config: Config) -> dict[str, Any]:
    """Validate every registered section; returns the typed forms the validators gave back."""
    typed: dict[str, Any] = {}
    for section, target in SECTION_VALIDATORS.items():
        module, func = target.split(":")
        result = getattr(importlib.import_module(module), func)(getattr(config, section))
        if result is not None:
            typed[section] = result
    return typed
