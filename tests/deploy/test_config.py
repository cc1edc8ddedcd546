"""deploy/config/secmon.yaml: valid for every section, secrets only from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from secmon.config import Config, ConfigError, load_config
from tests.deploy.conftest import CONFIG, CONFIG_ENV, api_settings


def test_check_config_accepts_the_shipped_config() -> None:
    """`secmon check-config` (all sections, detectors, templates) passes with the env set."""
    result = subprocess.run(
        [sys.executable, "-m", "secmon.cli", "check-config", str(CONFIG), "--quiet"],
        capture_output=True, text=True, env={**os.environ, **CONFIG_ENV}, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_every_required_variable_is_reported_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without one of the required variables, loading fails and names it."""
    for name in CONFIG_ENV:
        for key, value in CONFIG_ENV.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv(name)
        with pytest.raises(ConfigError, match=name):
            load_config(CONFIG)


def test_secrets_are_read_from_the_environment(config: Config) -> None:
    """Store URL and keys come from the environment and stay masked."""
    assert config.store.url.reveal() == CONFIG_ENV["SECMON_STORE_URL"]
    assert "test" not in repr(config.store.url)
    assert config.detectors["mfa_secret_reuse"]["hash_key"] == CONFIG_ENV["SECMON_MFA_HASH_KEY"]
    assert config.alerts["notifications"]["not_me"]["signing_key"] == CONFIG_ENV["SECMON_NOT_ME_SIGNING_KEY"]


def test_production_settings(config: Config) -> None:
    """Topics are provisioned (not auto-created), ops and API listen on all interfaces, a
    shared PostgreSQL store, JSON logs."""
    assert config.kafka.create_topics is False
    assert config.kafka.partitions == 6
    assert config.server.host == "0.0.0.0" and config.server.port == 9464
    api = api_settings(config)
    assert api.host == "0.0.0.0" and api.metrics
    assert config.store.url.reveal().startswith("postgresql")
    assert config.logging.format == "json"


def test_engine_settings_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "secmon.yaml"
    path.write_text("engine:\n  cold_after_ms: -1\n")
    with pytest.raises(ConfigError, match="cold_after_ms"):
        load_config(path)
    path.write_text("engine:\n  cold_after_ms: 0\n")
    assert load_config(path).engine.cold_after_ms == 0  # 0: the cold tier is off
