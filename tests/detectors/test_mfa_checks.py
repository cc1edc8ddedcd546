"""The shared MFA checks (used by the detectors and ``secmon audit-mfa``)."""

from __future__ import annotations

import base64
import os
import random

import pytest

from secmon.detectors.mfa_checks import (
    KNOWN_EXAMPLE_SECRETS,
    analyse_otpauth,
    assess_posture,
    guess_probability,
    low_entropy_signs,
    otpauth_fingerprint,
)

TIERS = (10_000.0, 100_000.0, 1_000_000.0)


def uri(secret: str, extra: str = "") -> str:
    return f"otpauth://totp/Wallet:a?secret={secret}&issuer=Wallet{extra}"


def test_guess_probability_matches_the_issue_example() -> None:
    """1,240 tries against 3 valid 6-digit codes: 0.37 %."""
    assert round(guess_probability(1240) * 100, 2) == 0.37
    assert guess_probability(0) == 0.0
    assert guess_probability(10, digits=1, valid_codes=10) == 1.0
    assert guess_probability(1, digits=8, valid_codes=1) == pytest.approx(1e-8)


@pytest.mark.parametrize(
    ("balance", "methods", "expected"),
    [
        (999.0, [], None),
        (1_000.0, [], ("no_2fa", "low")),
        (50_000.0, [], ("no_2fa", "medium")),
        (5_000_000.0, [], ("no_2fa", "critical")),
        (50_000.0, ["sms"], ("weak_only", "low")),
        (500_000.0, ["sms", "email"], ("weak_only", "medium")),
        (5_000_000.0, ["totp"], None),
        (5_000_000.0, ["sms", "webauthn"], None),
    ],
)
def test_posture_severity_grows_with_balance(balance: float, methods: list[str], expected: tuple | None) -> None:
    p = assess_posture(balance, methods, min_balance_usd=1_000.0, severity_tiers_usd=TIERS)
    assert (None if p is None else (p.state, p.severity)) == expected


def test_known_example_secrets_include_the_documentation_ones() -> None:
    assert {"JBSWY3DPEHPK3PXP", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "BASE32SECRET3232"} <= KNOWN_EXAMPLE_SECRETS
    assert "known_example_secret" in analyse_otpauth(uri("jbsw y3dp ehpk 3pxp".replace(" ", "%20"))).issues


def test_random_secrets_rarely_show_a_low_entropy_sign() -> None:
    """On uniformly random secrets the heuristics fire at about their documented rate: never
    on 160 bits; on 80 bits only "all bytes printable", p = (95/256)^10 ≈ 5e-5 (a seeded
    sample, so the test is deterministic)."""
    rng = random.Random(20261125)
    flagged = {10: 0, 20: 0}
    for n in flagged:
        for _ in range(20_000):
            raw = rng.randbytes(n)
            signs = low_entropy_signs(base64.b32encode(raw).decode(), raw)
            assert signs in ((), ("printable_text",))
            flagged[n] += bool(signs)
    assert flagged[20] == 0
    assert flagged[10] <= 5  # expected ≈ 1 in 20,000


def test_person_chosen_and_patterned_secrets_are_low_entropy() -> None:
    for text in ("my-company-secret-01", "12345678901234567890"):
        raw = text.encode()
        assert "printable_text" in low_entropy_signs(base64.b32encode(raw).decode(), raw)
    raw = bytes(range(20))
    assert "byte_sequence" in low_entropy_signs(base64.b32encode(raw).decode(), raw)
    assert "repeating_pattern" in low_entropy_signs("ABCDABCDABCDABCD", base64.b32decode("ABCDABCDABCDABCD"))


def test_short_secrets_are_measured_even_though_pyotp_refuses_them() -> None:
    r = analyse_otpauth(uri(base64.b32encode(os.urandom(10)).decode()))
    assert (r.secret_bits, r.issues, r.pyotp_error) == (80, ("short_secret",), "secret_below_pyotp_minimum")
    r = analyse_otpauth(uri(base64.b32encode(os.urandom(16)).decode()))
    assert (r.secret_bits, r.issues, r.pyotp_error) == (128, (), None)


@pytest.mark.parametrize(
    "bad",
    ["", "otpauth://totp/x", "otpauth://totp/x?secret=", "http://x?secret=AAAA", "otpauth://[::1",
     "otpauth://totp/x?secret=!!!!", "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=abc"],
)
def test_hostile_uris_never_raise(bad: str) -> None:
    report = analyse_otpauth(bad, key=b"k")
    assert report.issues
    assert otpauth_fingerprint(bad, b"k") is None or len(otpauth_fingerprint(bad, b"k") or "") == 64


def test_fingerprints_are_keyed_and_ignore_spelling() -> None:
    secret = base64.b32encode(os.urandom(20)).decode()
    a = otpauth_fingerprint(uri(secret), b"key-1")
    assert a == otpauth_fingerprint(uri(secret.lower().rstrip("=")), b"key-1")
    assert a != otpauth_fingerprint(uri(secret), b"key-2")
    assert a is not None and secret not in a


def test_the_report_explanation_holds_no_secret() -> None:
    secret = "JBSWY3DPEHPK3PXP"
    report = analyse_otpauth(uri(secret, "&digits=5&period=90"), key=b"k")
    text = repr(report.explanation(128, 60, 6)) + repr(report) + report.describe()
    assert secret not in text and "otpauth://" not in text
    assert {"few_digits", "long_period"} <= set(report.issues)
