"""``mfa_secret_reuse``: one TOTP secret on several accounts, matched by a keyed hash."""

from __future__ import annotations

import base64
import os
from typing import Any

import msgspec
import pytest

from secmon.config import ConfigError
from secmon.contract import encode_finding
from secmon.detectors.base import SourceRecord
from secmon.detectors.mfa_secret_reuse import MfaSecretReuse, MfaSecretReuseConfig
from secmon.detectors.registry import resolve
from secmon.engine.pipeline import Pipeline
from tests.helpers.detectors import run_events, specs
from tests.helpers.events import HOUR, MINUTE, T0, decoded, ev

SHARED = base64.b32encode(os.urandom(20)).decode().rstrip("=")


def enrol(account: str, secret: str, ts: int = T0, **envelope: Any) -> dict[str, Any]:
    uri = f"otpauth://totp/Wallet:{account}?secret={secret}&issuer=Wallet"
    return ev("mfa.enrolled", account, ts, {"method": "totp", "otpauth_uri": uri}, **envelope)


def run(events: list[dict[str, Any]], **options: Any):  # type: ignore[no-untyped-def]
    return run_events(events, {MfaSecretReuse: options})


def test_the_same_secret_on_two_accounts_is_one_account_less_finding() -> None:
    events = [enrol("a", SHARED), enrol("b", SHARED, T0 + 5 * HOUR)]
    (f,) = run(events).latest()
    assert (f.kind, f.account_id, f.severity) == ("mfa_secret_reuse", None, "high")
    assert f.explanation["accounts"] == ["a", "b"]
    assert f.evidence == (events[0]["event_id"], events[1]["event_id"])


def test_a_farm_of_accounts_escalates_the_same_finding() -> None:
    events = [enrol(f"farm{i}", SHARED, T0 + i * MINUTE) for i in range(6)]
    result = run(events)
    assert len(result.latest()) == 1
    assert result.latest()[0].severity == "critical"
    assert len(result.records) <= 3


def test_distinct_secrets_and_re_enrolment_of_one_account_are_not_reuse() -> None:
    """Hard negative: everybody their own secret; one user scanning the same QR twice."""
    events = [enrol(f"u{i}", base64.b32encode(os.urandom(20)).decode()) for i in range(20)]
    events += [enrol("v", SHARED), enrol("v", SHARED, T0 + HOUR)]
    assert run(events).records == []


def test_equal_secrets_match_whatever_their_spelling() -> None:
    """Case, padding and spaces do not hide a reused secret (the decoded bytes are hashed)."""
    spaced = " ".join(SHARED.lower()[i:i + 4] for i in range(0, len(SHARED), 4))
    (f,) = run([enrol("a", SHARED), enrol("b", spaced.replace(" ", "%20"))]).latest()
    assert f.explanation["distinct_accounts"] == 2


def test_the_forwarded_key_is_a_keyed_hash_and_holds_no_secret() -> None:
    event = decoded(enrol("a", SHARED))
    k1 = list(MfaSecretReuse.source_keys(event, MfaSecretReuse.Config()))
    (spec,) = resolve({"mfa_secret_reuse": {"hash_key": "another-key"}} | {
        name: {"enabled": False} for name in _other_detectors()})
    k2 = list(MfaSecretReuse.source_keys(event, spec.config))
    assert k1 != k2 and all(k.startswith("totp:") and len(k) == 5 + 64 for k in k1 + k2)
    assert SHARED not in k1[0] and SHARED not in k2[0]


def test_nothing_forwarded_stored_or_emitted_contains_the_secret() -> None:
    forwarded: list[SourceRecord] = []
    findings: list[Any] = []
    pipeline = Pipeline(specs({MfaSecretReuse: {}}))
    source = pipeline.source_task("s", findings.append)

    def forward(record: SourceRecord) -> None:
        forwarded.append(record)
        source.process_record(record)

    account = pipeline.account_task("a", findings.append, forward)
    for i, e in enumerate([enrol("a", SHARED), enrol("b", SHARED, T0 + MINUTE)]):
        account.process(decoded(e), "t", i)
    assert [f.kind for f in findings] == ["mfa_secret_reuse"]
    det = source.by_name["mfa_secret_reuse"]
    blobs = [msgspec.msgpack.encode(r) for r in forwarded] + [encode_finding(f) for f in findings]
    blobs += [msgspec.msgpack.encode(v) for _, v in det.state.items()]
    assert all(SHARED.encode() not in b and b"otpauth://" not in b for b in blobs)


def test_a_hostile_uri_is_not_forwarded_and_does_not_raise() -> None:
    for uri in ("otpauth://totp/x", "otpauth://totp/x?secret=", "\x00\xff", "otpauth://[::1"):
        event = decoded(ev("mfa.enrolled", "a", T0, {"method": "totp", "otpauth_uri": uri}))
        assert list(MfaSecretReuse.source_keys(event, MfaSecretReuse.Config())) == []


def test_an_empty_hash_key_fails_at_start_up() -> None:
    with pytest.raises(ConfigError):
        resolve({"mfa_secret_reuse": {"hash_key": ""}})


def test_the_hash_key_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from secmon.config import load_config, redacted

    monkeypatch.setenv("SECMON_MFA_HASH_KEY", "k-from-env")
    path = tmp_path / "c.yaml"
    path.write_text("detectors:\n  mfa_secret_reuse:\n    hash_key: ${SECMON_MFA_HASH_KEY}\n")
    config = load_config(path)
    spec = next(s for s in resolve(config.detectors) if s.name == "mfa_secret_reuse")
    assert isinstance(spec.config, MfaSecretReuseConfig)
    assert spec.config.hash_key.reveal() == "k-from-env"
    assert "k-from-env" not in repr(spec.config) and redacted(spec.config)["hash_key"] == "***"


def _other_detectors() -> list[str]:
    from secmon.detectors.registry import REGISTRY

    return [n for n in REGISTRY if n != "mfa_secret_reuse"]


def test_check_config_masks_the_hash_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from secmon.cli import main

    monkeypatch.setenv("SECMON_MFA_HASH_KEY", "k-never-printed")
    path = tmp_path / "c.yaml"
    path.write_text("detectors:\n  mfa_secret_reuse:\n    hash_key: ${SECMON_MFA_HASH_KEY}\n")
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "k-never-printed" not in out and '"hash_key": "***"' in out
