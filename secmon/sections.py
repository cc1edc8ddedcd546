"""Validation of the config sections owned by other packages (``alerts``, ``api``).

Kept apart from ``secmon.config`` so the core config module imports none of them.
"""

from __future__ import annotations

import importlib

from secmon.config import Config

#: section name → "module:function" that parses and validates it (raises ConfigError)
SECTION_VALIDATORS: dict[str, str] = {}


def validate_sections(config: Config) -> None:
    for section, target in SECTION_VALIDATORS.items():
        module, func = target.split(":")
        getattr(importlib.import_module(module), func)(getattr(config, section))
