"""Pure MFA checks shared by the MFA detectors and ``secmon audit-mfa``: one implementation.

Two questions:

* **posture** — does a valuable account rely on no second factor, or only on SMS/email
  (NIST SP 800-63B calls SMS/PSTN out-of-band authenticators *restricted*)?
* **TOTP secret** — is an ``otpauth://`` enrolment weak: a secret under 128 bits (RFC 4226
  §4 R6: MUST be at least 128, SHOULD be 160), a well-known example secret, a low-entropy
  secret, fewer than 6 digits, a period over 60 s, or an unusual algorithm?

The secret itself never leaves :func:`analyse_otpauth`: the report holds only its length,
the names of the problems and a keyed HMAC-SHA256 fingerprint (so equal secrets on two
accounts can be matched without storing the secret).  Nothing here raises with the secret or
the URI in a message: parse errors become short reason codes.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import math
from base64 import b32decode
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from secmon.contract import Severity
from secmon.detectors.common import SEVERITY_NAMES, SEVERITY_RANK

# ---------------------------------------------------------------------------- posture
#: Methods NIST SP 800-63B treats as restricted (SMS/PSTN) or weaker than an authenticator app.
WEAK_METHODS: Final = frozenset({"sms", "email"})


@dataclass(frozen=True, slots=True)
class Posture:
    """A weak posture: ``state`` is ``no_2fa`` or ``weak_only`` (only SMS/email)."""

    state: str
    severity: Severity
    balance_usd: float
    methods: tuple[str, ...]

    def explanation(self, min_balance_usd: float, tiers: Sequence[float]) -> dict[str, Any]:
        return {
            "posture": self.state,
            "balance_usd": round(self.balance_usd, 2),
            "mfa_methods": list(self.methods),
            "min_balance_usd": min_balance_usd,
            "severity_tiers_usd": list(tiers),
            "standard": "NIST SP 800-63B: SMS/PSTN is a restricted authenticator",
        }

    def describe(self) -> str:
        if self.state == "no_2fa":
            return "has no second factor"
        return f"relies only on {' and '.join(m.upper() if m == 'sms' else m for m in self.methods)}"


def assess_posture(
    balance_usd: float,
    methods: Iterable[str],
    *,
    min_balance_usd: float,
    severity_tiers_usd: Sequence[float],
    weak_methods: frozenset[str] = WEAK_METHODS,
) -> Posture | None:
    """The weak posture of an account, or None when it is fine (strong 2FA or small balance).

    Severity grows with the balance: ``low`` from ``min_balance_usd``, one step up at each of
    ``severity_tiers_usd``; an account with only SMS/email is one step below one with none.
    """
    if balance_usd < min_balance_usd:
        return None
    present = tuple(sorted(set(methods)))
    if not present:
        state, step = "no_2fa", 0
    elif all(m in weak_methods for m in present):
        state, step = "weak_only", 1
    else:
        return None
    rank = 1 + sum(1 for tier in severity_tiers_usd if balance_usd >= tier) - step
    return Posture(state, SEVERITY_NAMES[max(1, min(4, rank))], balance_usd, present)


def balance_severity(balance_usd: float, severity_tiers_usd: Sequence[float], floor: int = 1) -> Severity:
    """``floor`` severity plus one step per tier the balance reaches (capped at critical)."""
    rank = floor + sum(1 for tier in severity_tiers_usd if balance_usd >= tier)
    return SEVERITY_NAMES[min(4, rank)]


# ---------------------------------------------------------------------------- TOTP secrets
def _b32(text: str) -> str:
    return text.upper().replace(" ", "").rstrip("=")


#: Secrets published in documentation, RFC test vectors and tutorials: anyone can compute
#: their codes.  Normalised base32 (upper case, no padding or spaces).
KNOWN_EXAMPLE_SECRETS: Final = frozenset(
    _b32(s)
    for s in (
        "JBSWY3DPEHPK3PXP",  # Google Authenticator "Key Uri Format" wiki; pyotp README
        "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ",  # Key Uri Format wiki (ACME Co example)
        "base32secret3232",  # pyotp README
        "KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD",  # otplib README
        "I65VU7K5ZQL7WB4E",  # authenticationtest.com public demo
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",  # RFC 4226 / RFC 6238 test key "12345678901234567890"
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA",  # RFC 6238 SHA-256 test key
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA",  # SHA-512
    )
)

#: Issue code → severity of that issue alone (a report's severity is the worst of its issues).
ISSUE_SEVERITY: Final[dict[str, Severity]] = {
    "known_example_secret": "critical",
    "very_short_secret": "high",
    "low_entropy_secret": "high",
    "short_secret": "medium",
    "few_digits": "medium",
    "unusual_algorithm": "medium",
    "long_period": "low",
    "malformed_uri": "low",
}

ISSUE_TEXT: Final[dict[str, str]] = {
    "known_example_secret": "a published example secret",
    "very_short_secret": "a very short secret",
    "low_entropy_secret": "a low-entropy secret",
    "short_secret": "a secret under 128 bits",
    "few_digits": "codes under 6 digits",
    "unusual_algorithm": "an unusual algorithm",
    "long_period": "a period over 60 s",
    "malformed_uri": "an otpauth URI that does not parse",
}


@dataclass(frozen=True, slots=True)
class SecretReport:
    """What is wrong with one TOTP enrolment; holds no secret (only a keyed fingerprint)."""

    issues: tuple[str, ...]
    fingerprint: str | None
    secret_bits: int | None
    digits: int | None
    period: int | None
    algorithm: str | None
    pyotp_error: str | None
    low_entropy: tuple[str, ...] = ()

    @property
    def severity(self) -> Severity | None:
        if not self.issues:
            return None
        return max((ISSUE_SEVERITY[i] for i in self.issues), key=SEVERITY_RANK.__getitem__)

    def explanation(self, min_bits: int, max_period: int, min_digits: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "issues": list(self.issues),
            "secret_bits": self.secret_bits,
            "min_secret_bits": min_bits,
            "recommended_secret_bits": 160,
            "digits": self.digits,
            "min_digits": min_digits,
            "period_s": self.period,
            "max_period_s": max_period,
            "algorithm": self.algorithm,
            "standard": "RFC 4226 §4 R6 (secret MUST be >= 128 bits, SHOULD be 160); RFC 6238",
        }
        if self.low_entropy:
            out["low_entropy_signs"] = list(self.low_entropy)
        if self.pyotp_error:
            out["pyotp_rejects"] = self.pyotp_error
        if self.fingerprint:
            out["secret_fingerprint"] = self.fingerprint[:16]
        return out

    def describe(self) -> str:
        return ", ".join(ISSUE_TEXT[i] for i in self.issues)


def secret_fingerprint(secret_bytes: bytes, key: bytes) -> str:
    """Keyed HMAC-SHA256 of the decoded secret: matches equal secrets, reveals nothing."""
    return hmac.new(key, secret_bytes, hashlib.sha256).hexdigest()


def _decode_b32(text: str) -> bytes | None:
    """Base32 → bytes, tolerant of case, spaces and missing padding; None if not base32."""
    norm = _b32(text)
    if not norm:
        return None
    try:
        return b32decode(norm + "=" * (-len(norm) % 8), casefold=True)
    except (binascii.Error, ValueError):
        return None


def _otpauth_params(uri: str) -> tuple[str, dict[str, str]] | None:
    """(type, query parameters) of an otpauth URI, or None when it is not one."""
    try:
        parts = urlsplit(uri.strip())
    except ValueError:
        return None
    if parts.scheme.lower() != "otpauth":
        return None
    params: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        params.setdefault(k.lower(), v)
    return parts.netloc.lower(), params


def otpauth_fingerprint(uri: str, key: bytes) -> str | None:
    """The keyed fingerprint of the secret in ``uri`` (None without a secret); never raises."""
    try:
        parsed = _otpauth_params(uri)
        if parsed is None:
            return None
        secret = parsed[1].get("secret")
        if not secret:
            return None
        raw = _decode_b32(secret)
        return secret_fingerprint(raw if raw is not None else _b32(secret).encode(), key)
    except Exception:  # a hostile URI must never stop the pipeline or leak in a traceback
        return None


_B32_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def low_entropy_signs(text: str, raw: bytes) -> tuple[str, ...]:
    """Why a secret looks chosen by a person or a program bug rather than a CSPRNG.

    Each test has a negligible false-positive rate on random secrets of 80+ bits (e.g. ten
    random bytes are all printable ASCII with probability (95/256)^10 ≈ 5e-5).
    """
    signs: list[str] = []
    norm = _b32(text)
    n = len(norm)
    if n and len(set(norm)) <= max(2, n // 8):
        signs.append("few_distinct_symbols")
    for unit in range(1, min(8, n // 2) + 1):
        if n >= 2 * unit and norm == (norm[:unit] * (n // unit + 1))[:n]:
            signs.append("repeating_pattern")
            break
    if n >= 8 and (norm in _B32_ALPHABET * 3 or norm[::-1] in _B32_ALPHABET * 3):
        signs.append("alphabet_sequence")
    if len(raw) >= 8:
        if all(32 <= b < 127 for b in raw):
            signs.append("printable_text")
        steps = {(raw[i + 1] - raw[i]) % 256 for i in range(len(raw) - 1)}
        if len(steps) == 1:
            signs.append("byte_sequence")
    return tuple(signs)


def _pyotp_check(uri: str) -> str | None:
    """What pyotp says about the URI, as a short code (pyotp rejects secrets < 112 bits)."""
    import pyotp

    try:
        pyotp.parse_uri(uri)
    except Exception as exc:  # the message may quote parameters: map it to a fixed code
        text = str(exc)
        if "bits" in text:
            return "secret_below_pyotp_minimum"
        if "igits" in text:
            return "invalid_digits"
        if "algorithm" in text or "digest" in text:
            return "invalid_algorithm"
        if "secret" in text.lower() or isinstance(exc, binascii.Error):
            return "invalid_secret"
        return "invalid_uri"
    return None


def analyse_otpauth(
    uri: str,
    *,
    key: bytes | None = None,
    min_secret_bits: int = 128,
    very_short_bits: int = 80,
    min_digits: int = 6,
    max_period_s: int = 60,
    allowed_algorithms: Iterable[str] = ("SHA1", "SHA256", "SHA512"),
) -> SecretReport:
    """Check one ``otpauth://`` URI; the secret is measured here and then forgotten.

    With a ``key`` the report carries the secret's keyed fingerprint (to match reuse)."""
    try:
        return _analyse(uri, key, min_secret_bits, very_short_bits, min_digits, max_period_s, allowed_algorithms)
    except Exception:  # never propagate: an exception could carry the secret into a log
        return SecretReport(("malformed_uri",), None, None, None, None, None, "invalid_uri")


def _analyse(
    uri: str,
    key: bytes | None,
    min_secret_bits: int,
    very_short_bits: int,
    min_digits: int,
    max_period_s: int,
    allowed_algorithms: Iterable[str],
) -> SecretReport:
    parsed = _otpauth_params(uri)
    secret = parsed[1].get("secret") if parsed else None
    if parsed is None or not secret:
        return SecretReport(("malformed_uri",), None, None, None, None, None, "invalid_uri")
    params = parsed[1]
    raw = _decode_b32(secret)
    issues: list[str] = []
    digits = _int(params.get("digits"), 6)
    period = _int(params.get("period"), 30)
    algorithm = (params.get("algorithm") or "SHA1").upper()
    bits = None if raw is None else len(raw) * 8
    signs: tuple[str, ...] = ()
    material = raw if raw is not None else _b32(secret).encode()
    fingerprint = secret_fingerprint(material, key) if key is not None else None
    if raw is None:
        issues.append("malformed_uri")
    else:
        if _b32(secret) in KNOWN_EXAMPLE_SECRETS:
            issues.append("known_example_secret")
        if bits is not None and bits < very_short_bits:
            issues.append("very_short_secret")
        elif bits is not None and bits < min_secret_bits:
            issues.append("short_secret")
        signs = low_entropy_signs(secret, raw)
        if signs:
            issues.append("low_entropy_secret")
    if digits is None or digits < min_digits:
        issues.append("few_digits")
    if period is None or period > max_period_s or period <= 0:
        issues.append("long_period")
    if algorithm not in {a.upper() for a in allowed_algorithms}:
        issues.append("unusual_algorithm")
    return SecretReport(
        tuple(issues), fingerprint, bits, digits, period, algorithm, _pyotp_check(uri), signs
    )


def _int(text: str | None, default: int) -> int | None:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        return None


# ---------------------------------------------------------------------------- guessing odds
def guess_probability(tries: int, digits: int = 6, valid_codes: int = 3) -> float:
    """Chance that ``tries`` random guesses hit one of ``valid_codes`` accepted codes.

    A verifier that accepts ±1 time step accepts 3 codes out of 10^digits on each try, so
    after n tries the attacker's cumulative chance is 1 - (1 - 3/10^6)^n (about 0.37 % at
    1,240 tries).  ``log1p`` keeps the small numbers exact.
    """
    p = min(1.0, valid_codes / 10**digits)
    if tries <= 0 or p <= 0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return -math.expm1(tries * math.log1p(-p))
