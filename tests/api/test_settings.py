"""The ``api`` config section: defaults, validation errors, and ``secmon check-config``."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from secmon.api.settings import parse, validate
from secmon.cli import main
from secmon.config import ConfigError
from tests.api.conftest import Oidc


def test_defaults() -> None:
    s = parse({})
    assert (s.host, s.port, s.session_ttl_ms) == ("127.0.0.1", 8080, 8 * 3_600_000)
    assert not s.oidc.enabled and s.verification.secret_store.type == "none"
    assert (s.verification.max_attempts, s.verification.window_ms) == (5, 15 * 60_000)


@pytest.mark.parametrize(("section", "message"), [
    ({"prot": 1}, "unknown field"),
    ({"oidc": {"issuer": "https://idp"}}, "audience is required"),
    ({"oidc": {"issuer": "https://idp", "audience": "a"}}, "exactly one of jwks_file and jwks"),
    ({"oidc": {"issuer": "https://idp", "audience": "a", "jwks": {"keys": []}}}, "non-empty 'keys'"),
    ({"oidc": {"issuer": "https://idp", "audience": "a", "jwks_file": "/nonexistent.json"}}, "cannot read"),
    ({"verification": {"secret_store": {"type": "file"}}}, "path is required"),
    ({"verification": {"max_attempts": 0}}, "must be positive"),
    ({"cookie_secure": "sometimes"}, "cookie_secure"),
    ({"oidc": {"role_map": {"g": "root"}}}, "role_map"),
])  # fmt: skip
def test_invalid_sections_fail_with_a_clear_message(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(section)


def test_oidc_rejects_symmetric_algorithms(oidc: Oidc) -> None:
    with pytest.raises(ConfigError, match="asymmetric"):
        parse({"oidc": {"issuer": "i", "audience": "a", "jwks": oidc.jwks(), "algorithms": ["HS256"]}})
    assert parse({"oidc": {"issuer": "i", "audience": "a", "jwks": oidc.jwks()}}).oidc.enabled


def test_check_config_validates_the_api_section_and_the_secret_store(tmp_path: Path, oidc: Oidc,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    store = tmp_path / "totp.json"
    store.write_text(orjson.dumps({"a": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}).decode())
    os.chmod(store, 0o644)
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps(oidc.jwks()))
    cfg = tmp_path / "secmon.yaml"
    cfg.write_text(f"api:\n  oidc: {{issuer: https://idp, audience: secmon, jwks_file: {jwks}}}\n"
                   f"  verification:\n    secret_store: {{type: file, path: {store}}}\n")  # fmt: skip
    assert main(["check-config", str(cfg)]) == 2
    assert "chmod 600" in capsys.readouterr().err
    os.chmod(store, 0o600)
    assert main(["check-config", str(cfg), "--quiet"]) == 0
    assert validate(orjson.loads(orjson.dumps({"port": 9000}))).port == 9000
