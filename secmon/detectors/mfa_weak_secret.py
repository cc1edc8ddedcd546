"""``mfa_weak_secret``: a TOTP enrolment with weak parameters.

Reads the ``otpauth://`` URI of ``mfa.enrolled`` (present only on the protected posture
topic configuration) and flags a secret under 128 bits (RFC 4226 §4 R6: MUST be at least
128, SHOULD be 160), a well-known example secret, a low-entropy secret (repeats, sequences,
text), fewer than 6 digits, a period over 60 s or an unusual algorithm.  pyotp refuses
secrets under 112 bits, so the secret is decoded and measured here, never rejected with a
crash; pyotp's own verdict is reported alongside.

The URI carries the secret: it is never logged, stored or emitted.  The detector keeps no
state, and the finding holds only the names of the problems and the secret's length (the
checks run in :mod:`secmon.detectors.mfa_checks`, shared with ``secmon audit-mfa``).
"""

from __future__ import annotations

from secmon.contract import MfaEnrolled
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState
from secmon.detectors.mfa_checks import analyse_otpauth


class MfaWeakSecretConfig(DetectorConfig, frozen=True, kw_only=True):
    #: RFC 4226 §4 R6: the shared secret MUST be at least 128 bits (160 recommended).
    min_secret_bits: int = 128
    #: Secrets shorter than this are high severity (pyotp itself refuses < 112).
    very_short_bits: int = 80
    #: Fewer code digits than this make guessing easier (RFC 4226 allows 6 to 8).
    min_digits: int = 6
    #: A longer period keeps each code valid for longer (RFC 6238 recommends 30 s).
    max_period_s: int = 60
    #: Algorithms an authenticator is expected to use (RFC 6238: HMAC-SHA-1/256/512).
    allowed_algorithms: tuple[str, ...] = ("SHA1", "SHA256", "SHA512")
    #: Also report URIs that do not parse (an enrolment the user's app cannot use).
    report_malformed: bool = True


class MfaWeakSecret(Detector[MfaWeakSecretConfig, KeyState]):
    name = "mfa_weak_secret"
    kinds = ("mfa_weak_secret",)
    event_types = frozenset({"mfa.enrolled"})
    Config = MfaWeakSecretConfig

    def on_event(self, e: MfaEnrolled, ctx: Context) -> None:
        uri = e.payload.otpauth_uri
        if not uri or e.payload.method != "totp":
            return
        c = self.config
        report = analyse_otpauth(
            uri,
            min_secret_bits=c.min_secret_bits,
            very_short_bits=c.very_short_bits,
            min_digits=c.min_digits,
            max_period_s=c.max_period_s,
            allowed_algorithms=c.allowed_algorithms,
        )
        severity = report.severity
        if severity is None or (report.issues == ("malformed_uri",) and not c.report_malformed):
            return
        ctx.emit(
            kind="mfa_weak_secret",
            severity=severity,
            dedup_key=f"{e.account_id}|{e.event_id}",
            account_id=e.account_id,
            first_seen_ms=e.ts,
            last_seen_ms=e.ts,
            evidence=[e.event_id],
            summary=(
                f"A TOTP authenticator was enrolled with {report.describe()}: "
                "the user should re-enrol with a freshly generated secret."
            ),
            explanation=report.explanation(c.min_secret_bits, c.max_period_s, c.min_digits),
        )
