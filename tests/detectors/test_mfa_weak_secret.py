"""``mfa_weak_secret``: weak TOTP enrolments — and the secret never leaves the detector."""

from __future__ import annotations

import base64
import logging
import os
from typing import Any

import msgspec
import pytest

from secmon.contract import encode_finding
from secmon.detectors.mfa_weak_secret import MfaWeakSecret
from tests.helpers.detectors import run_events
from tests.helpers.events import T0, ev


def enrol(account: str, secret: str, extra: str = "") -> dict[str, Any]:
    uri = f"otpauth://totp/Wallet:{account}?secret={secret}&issuer=Wallet{extra}"
    return ev("mfa.enrolled", account, T0, {"method": "totp", "otpauth_uri": uri})


def random_secret(nbytes: int = 20) -> str:
    return base64.b32encode(os.urandom(nbytes)).decode().rstrip("=")


def run(events: list[dict[str, Any]], **options: Any):  # type: ignore[no-untyped-def]
    return run_events(events, {MfaWeakSecret: options})


@pytest.mark.parametrize(
    ("secret", "extra", "issue", "severity"),
    [
        ("JBSWY3DPEHPK3PXP", "", "known_example_secret", "critical"),
        ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "", "known_example_secret", "critical"),
        ("A" * 32, "", "low_entropy_secret", "high"),
        ("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "", "low_entropy_secret", "high"),
        (random_secret(5), "", "very_short_secret", "high"),
        (random_secret(12), "", "short_secret", "medium"),
        (random_secret(), "&digits=4", "few_digits", "medium"),
        (random_secret(), "&period=120", "long_period", "low"),
        (random_secret(), "&algorithm=MD5", "unusual_algorithm", "medium"),
    ],
)
def test_weak_enrolments_are_reported(secret: str, extra: str, issue: str, severity: str) -> None:
    (f,) = run([enrol("a", secret, extra)]).latest()
    assert issue in f.explanation["issues"]
    assert f.severity == severity and f.account_id == "a"


def test_a_fresh_160_bit_secret_is_fine() -> None:
    """Hard negative: what a correct enrolment looks like (several, to rule out luck)."""
    assert run([enrol(f"u{i}", random_secret()) for i in range(50)]).records == []


def test_a_secret_pyotp_refuses_is_measured_not_crashed_on() -> None:
    """pyotp rejects secrets under 112 bits; the detector decodes and reports instead."""
    (f,) = run([enrol("b", random_secret(10))]).latest()
    assert f.explanation["secret_bits"] == 80
    assert f.explanation["pyotp_rejects"] == "secret_below_pyotp_minimum"


def test_the_secret_and_the_uri_never_appear_in_findings_state_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    secrets = ["JBSWY3DPEHPK3PXP", random_secret(10), "A" * 32, "not base32 !!"]
    events = [enrol(f"c{i}", s) for i, s in enumerate(secrets)]
    with caplog.at_level(logging.DEBUG):
        result = run(events)
    assert len(result.latest()) == len(secrets)
    det = result.account_task.by_name["mfa_weak_secret"]  # type: ignore[union-attr]
    blobs = [encode_finding(f) for f in result.records]
    blobs += [msgspec.msgpack.encode(v) for _, v in det.state.items()]
    blobs.append(caplog.text.encode())
    for secret in secrets:
        for blob in blobs:
            assert secret.encode() not in blob
            assert b"otpauth://" not in blob


def test_malformed_uris_are_reported_low_unless_disabled() -> None:
    events = [ev("mfa.enrolled", "d", T0, {"method": "totp", "otpauth_uri": "https://example.com/?secret=x"})]
    (f,) = run(events).latest()
    assert (f.severity, f.explanation["issues"]) == ("low", ["malformed_uri"])
    assert run(events, report_malformed=False).records == []


def test_enrolments_without_a_uri_are_ignored() -> None:
    events = [ev("mfa.enrolled", "e", T0, {"method": "totp"}), ev("mfa.enrolled", "e", T0, {"method": "sms"})]
    assert run(events).records == []
