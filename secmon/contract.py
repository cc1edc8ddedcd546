"""The wallet event contract (``shared/contract/EVENTS.md``, v1) and the finding record.

This module depends on nothing else in secmon: it is the boundary the platform, the
detectors and the action layer agree on.

Decoding is one ``msgspec`` call per record into a tagged union of event structs (tag:
``event_type``), so type checks, enum checks, length limits and RFC 3339 parsing all run in
C.  A record that fails is reported as :class:`BadRecord` with a machine-readable
``reason`` (one of :data:`BAD_RECORD_REASONS`) for the dead-letter topic.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Final, Literal

import msgspec

SCHEMA_VERSION: Final = "1"

# ---------------------------------------------------------------------------- field types
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
DeviceId = Annotated[str, msgspec.Meta(max_length=128)]
UserAgent = Annotated[str, msgspec.Meta(max_length=1024)]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
#: Money is a decimal string ("1250.50"), never a float.
Money = Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]{1,30}(\.[0-9]{1,18})?$")]
Country = Annotated[str, msgspec.Meta(min_length=2, max_length=2)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]

MfaMethod = Literal["totp", "sms", "email", "webauthn", "push"]
LoginMfa = Literal["none", "totp", "sms", "email", "webauthn", "push"]


class Geo(msgspec.Struct, frozen=True, gc=False):
    country: Country
    city: str | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None


# ---------------------------------------------------------------------------- payloads
class _Payload(msgspec.Struct, frozen=True, gc=False):
    """Base of every payload: unknown extra fields are ignored (forward compatibility)."""


class EmptyPayload(_Payload, frozen=True):
    pass


class LoginSucceeded_(_Payload, frozen=True):
    method: Literal["password", "sso", "biometric"]
    mfa: LoginMfa


class LoginFailed_(_Payload, frozen=True):
    reason: Literal["bad_password", "unknown_account", "bad_mfa", "locked", "expired_password"]


class AccountLocked_(_Payload, frozen=True):
    reason: Literal["too_many_failures", "admin", "risk"]
    failed_attempts: NonNegative
    #: ``null`` means until unlocked; a producer that omits it means the same.
    locked_until: Timestamp | None = None


class AccountUnlocked_(_Payload, frozen=True):
    by: Literal["timeout", "password_reset", "support", "admin"]


class PasswordResetRequested_(_Payload, frozen=True):
    channel: Literal["email", "sms"]


class PasswordChanged_(_Payload, frozen=True):
    via: Literal["reset", "settings", "support"]
    strength: Annotated[int, msgspec.Meta(ge=0, le=4)]
    breached: bool


class MfaEnrolled_(_Payload, frozen=True):
    method: MfaMethod
    #: Contains the TOTP secret: never log, store or emit it.
    otpauth_uri: str | None = None

    def __repr__(self) -> str:  # keep the secret out of tracebacks and logs
        return f"MfaEnrolled_(method={self.method!r}, otpauth_uri={'<redacted>' if self.otpauth_uri else None})"


class MfaDisabled_(_Payload, frozen=True):
    method: MfaMethod
    via: Literal["settings", "support", "admin"]


class MfaChallenge_(_Payload, frozen=True):
    method: MfaMethod


class RecoveryCodeUsed_(_Payload, frozen=True):
    remaining: NonNegative


class ContactChanged_(_Payload, frozen=True):
    field: Literal["email", "phone"]


class DepositInitiated_(_Payload, frozen=True):
    tx_id: Id
    asset: Id
    amount: Money
    amount_usd: Money
    network: Id


class DepositCredited_(_Payload, frozen=True):
    tx_id: Id
    asset: Id
    amount: Money
    amount_usd: Money


class WithdrawalRequested_(_Payload, frozen=True):
    tx_id: Id
    asset: Id
    amount: Money
    amount_usd: Money
    to_address: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    network: Id
    fee: Money
    balance_usd_before: Money | None = None


class WithdrawalCompleted_(_Payload, frozen=True):
    tx_id: Id


WithdrawalFailureReason = Literal[
    "account_mismatch", "insufficient_funds", "bank_rejected", "chain_error", "limit_exceeded", "risk_hold"
]


class WithdrawalFailed_(_Payload, frozen=True):
    tx_id: Id
    reason: WithdrawalFailureReason


class TransferSent_(_Payload, frozen=True):
    tx_id: Id
    asset: Id
    amount: Money
    amount_usd: Money
    to_account: Id
    balance_usd_before: Money | None = None


class AddressAdded_(_Payload, frozen=True):
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    asset: Id
    label: str | None = None


class AccountSnapshot_(_Payload, frozen=True):
    balance_usd: Money
    mfa_methods: list[MfaMethod]
    email_verified: bool
    phone_verified: bool
    created_at: Timestamp
    locale: Annotated[str, msgspec.Meta(min_length=2, max_length=35)]


# ---------------------------------------------------------------------------- envelope
class Event(msgspec.Struct, tag_field="event_type", kw_only=True, gc=False):
    """The envelope every event shares.  ``ts`` (epoch milliseconds) is set by :func:`decode`.

    Subclasses carry the ``event_type`` tag and a typed ``payload``.
    """

    event_id: Id
    schema_version: Literal["1"]
    occurred_at: Timestamp
    account_id: Id
    source: str | None = None
    ip: str | None = None
    device_id: DeviceId | None = None
    user_agent: UserAgent | None = None
    geo: Geo | None = None
    asn: int | None = None
    #: Event time in epoch milliseconds; derived, never read from the input.
    ts: int = msgspec.field(default=0, name="__secmon_ts")

    topic: ClassVar[str]
    #: The tag, as a plain class attribute (set below for every event class): it is read for
    #: every event by the engine and several detectors, and ``__struct_config__`` builds a
    #: new object on each access.
    event_type: ClassVar[str]
    payload: Any


_AUTH = "auth.events"
_WALLET = "wallet.events"
_SNAPSHOTS = "account.snapshots"


class LoginSucceeded(Event, tag="login.succeeded"):
    payload: LoginSucceeded_
    topic: ClassVar[str] = _AUTH


class LoginFailed(Event, tag="login.failed"):
    payload: LoginFailed_
    topic: ClassVar[str] = _AUTH


class AccountLocked(Event, tag="account.locked"):
    payload: AccountLocked_
    topic: ClassVar[str] = _AUTH


class AccountUnlocked(Event, tag="account.unlocked"):
    payload: AccountUnlocked_
    topic: ClassVar[str] = _AUTH


class PasswordResetRequested(Event, tag="password.reset_requested"):
    payload: PasswordResetRequested_
    topic: ClassVar[str] = _AUTH


class PasswordChanged(Event, tag="password.changed"):
    payload: PasswordChanged_
    topic: ClassVar[str] = _AUTH


class MfaEnrolled(Event, tag="mfa.enrolled"):
    payload: MfaEnrolled_
    topic: ClassVar[str] = _AUTH


class MfaDisabled(Event, tag="mfa.disabled"):
    payload: MfaDisabled_
    topic: ClassVar[str] = _AUTH


class MfaChallengeFailed(Event, tag="mfa.challenge_failed"):
    payload: MfaChallenge_
    topic: ClassVar[str] = _AUTH


class MfaChallengeSucceeded(Event, tag="mfa.challenge_succeeded"):
    payload: MfaChallenge_
    topic: ClassVar[str] = _AUTH


class RecoveryCodeUsed(Event, tag="recovery_code.used"):
    payload: RecoveryCodeUsed_
    topic: ClassVar[str] = _AUTH


class ContactChanged(Event, tag="contact.changed"):
    payload: ContactChanged_
    topic: ClassVar[str] = _AUTH


class DepositInitiated(Event, tag="deposit.initiated"):
    payload: DepositInitiated_
    topic: ClassVar[str] = _WALLET


class DepositCredited(Event, tag="deposit.credited"):
    payload: DepositCredited_
    topic: ClassVar[str] = _WALLET


class WithdrawalRequested(Event, tag="withdrawal.requested"):
    payload: WithdrawalRequested_
    topic: ClassVar[str] = _WALLET


class WithdrawalCompleted(Event, tag="withdrawal.completed"):
    payload: WithdrawalCompleted_
    topic: ClassVar[str] = _WALLET


class WithdrawalFailed(Event, tag="withdrawal.failed"):
    payload: WithdrawalFailed_
    topic: ClassVar[str] = _WALLET


class TransferSent(Event, tag="transfer.sent"):
    payload: TransferSent_
    topic: ClassVar[str] = _WALLET


class AddressAdded(Event, tag="address.added"):
    payload: AddressAdded_
    topic: ClassVar[str] = _WALLET


class AccountSnapshot(Event, tag="account.snapshot"):
    payload: AccountSnapshot_
    topic: ClassVar[str] = _SNAPSHOTS


EVENT_CLASSES: Final[tuple[type[Event], ...]] = (
    LoginSucceeded, LoginFailed, AccountLocked, AccountUnlocked, PasswordResetRequested,
    PasswordChanged, MfaEnrolled, MfaDisabled, MfaChallengeFailed, MfaChallengeSucceeded,
    RecoveryCodeUsed, ContactChanged, DepositInitiated, DepositCredited, WithdrawalRequested,
    WithdrawalCompleted, WithdrawalFailed, TransferSent, AddressAdded, AccountSnapshot,
)  # fmt: skip
for _cls in EVENT_CLASSES:
    _cls.event_type = _cls.__struct_config__.tag  # type: ignore[misc,assignment]
EVENT_TYPES: Final[dict[str, type[Event]]] = {
    c.__struct_config__.tag: c for c in EVENT_CLASSES  # type: ignore[misc]
}
AUTH_TYPES: Final = frozenset(t for t, c in EVENT_TYPES.items() if c.topic == _AUTH)
WALLET_TYPES: Final = frozenset(t for t, c in EVENT_TYPES.items() if c.topic == _WALLET)
SNAPSHOT_TYPES: Final = frozenset(t for t, c in EVENT_TYPES.items() if c.topic == _SNAPSHOTS)

AnyEvent = (
    LoginSucceeded | LoginFailed | AccountLocked | AccountUnlocked | PasswordResetRequested
    | PasswordChanged | MfaEnrolled | MfaDisabled | MfaChallengeFailed | MfaChallengeSucceeded
    | RecoveryCodeUsed | ContactChanged | DepositInitiated | DepositCredited | WithdrawalRequested
    | WithdrawalCompleted | WithdrawalFailed | TransferSent | AddressAdded | AccountSnapshot
)  # fmt: skip

# ---------------------------------------------------------------------------- bad input
BAD_RECORD_REASONS: Final = (
    "oversize",            # larger than the configured limit
    "not_json",            # not UTF-8 JSON at all
    "not_object",          # JSON, but not an object
    "missing_field",       # a required field is absent
    "wrong_type",          # a field has the wrong JSON type
    "bad_value",           # right type, value out of the allowed set or range
    "unknown_event_type",  # event_type not in the contract
    "bad_schema_version",  # schema_version is not "1"
    "bad_timestamp",       # a timestamp does not parse or lacks an offset
    "bad_ip",              # ip is not an IPv4/IPv6 address
)  # fmt: skip
DEFAULT_MAX_EVENT_BYTES: Final = 64 * 1024


class BadRecord(ValueError):
    """A record that breaks the contract.  ``reason`` is one of :data:`BAD_RECORD_REASONS`."""

    def __init__(self, reason: str, detail: str, event_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.event_id = event_id


_TIMESTAMP_FIELDS = ("occurred_at", "locked_until", "created_at")


def _classify(message: str) -> str:
    """Map a msgspec validation message to a machine-readable reason."""
    if "$.schema_version" in message:
        return "bad_schema_version"
    if message.startswith("Invalid value") and message.endswith("`$.event_type`"):
        return "unknown_event_type"
    if message.startswith("Object missing required field"):
        return "missing_field"
    if any(f"$.{f}" in message or f".{f}`" in message for f in _TIMESTAMP_FIELDS) and (
        "datetime" in message or "RFC3339" in message
    ):
        return "bad_timestamp"
    if message.startswith("Expected `object`, got") and " - at " not in message:
        return "not_object"
    if message.startswith("Expected `") and ("got `" in message or message.endswith("`")):
        if "of length" in message or ">=" in message or "<=" in message or "matching regex" in message:
            return "bad_value"
        return "wrong_type"
    return "bad_value"


def _valid_ip(ip: str) -> bool:
    # An IPv4 dotted quad that the C parser accepts, ``ipaddress`` accepts too (four decimal
    # octets, no leading zeros): a fast yes for most addresses, which are seen once each
    # (mobile carriers hand out one per session), so not cached (a miss in a cache of 10^5
    # addresses costs more than the check).  Anything else takes the full, cached check.
    if ":" in ip:
        return _valid_other_ip(ip)
    try:
        socket.inet_pton(socket.AF_INET, ip)
        return True
    except (OSError, ValueError):
        return _valid_other_ip(ip)


@lru_cache(maxsize=16384)
def _valid_other_ip(ip: str) -> bool:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True


class EventDecoder:
    """Decode raw record bytes into contract events, or raise :class:`BadRecord`."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._decoder = msgspec.json.Decoder(AnyEvent)
        self._probe = msgspec.json.Decoder(_IdProbe)

    def decode(self, raw: bytes) -> AnyEvent:
        if len(raw) > self.max_bytes:
            raise BadRecord("oversize", f"{len(raw)} bytes > limit {self.max_bytes}")
        try:
            event = self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise BadRecord(_classify(str(exc)), str(exc), self._event_id(raw)) from None
        except msgspec.DecodeError as exc:
            raise BadRecord("not_json", str(exc)) from None
        if event.ip is not None and not _valid_ip(event.ip):
            raise BadRecord("bad_ip", "not an IP address - at `$.ip`", event.event_id)
        event.ts = int(event.occurred_at.timestamp() * 1000)
        # Every detector keys its state by the account: one shared string object per
        # account, not one per event and detector (a few hundred bytes per account).
        event.account_id = sys.intern(event.account_id)
        return event

    def decode_record(self, raw: bytes | None) -> AnyEvent:
        """:meth:`decode` for a Kafka record's value: any other failure (a tombstone's
        ``None``, say) is a ``bad_value`` :class:`BadRecord` too, so that one record never
        stalls a consumer — the worker's or its fetch process's."""
        try:
            return self.decode(raw)  # type: ignore[arg-type]
        except BadRecord:
            raise
        except Exception as exc:
            raise BadRecord("bad_value", f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    def adopt(event: AnyEvent) -> AnyEvent:
        """An event :meth:`decode` returned in another process (the fetch process), after a
        trip through msgpack: its account id is interned here, as :meth:`decode` does."""
        event.account_id = sys.intern(event.account_id)
        return event

    def _event_id(self, raw: bytes) -> str | None:
        try:
            return self._probe.decode(raw).event_id
        except msgspec.DecodeError:
            return None


class _IdProbe(msgspec.Struct):
    event_id: str | None = None


# ---------------------------------------------------------------------------- findings
FINDING_KINDS: Final = (
    "brute_force", "account_lockout", "repeated_lockout", "credential_stuffing",
    "password_spraying", "compromise_suspected", "impossible_travel", "account_takeover",
    "anomalous_transaction", "deposit_delayed", "withdrawal_failures", "withdrawal_outage",
    "mfa_weak_posture", "mfa_weak_secret", "mfa_secret_reuse", "mfa_bruteforce",
    "mfa_disabled_risk", "weak_password",
)  # fmt: skip
SEVERITIES: Final = ("info", "low", "medium", "high", "critical")
Severity = Literal["info", "low", "medium", "high", "critical"]
FindingStatus = Literal["open", "resolved"]


class Subject(msgspec.Struct, omit_defaults=True, frozen=True):
    """What else a finding is about, besides the account."""

    ip: str | None = None
    asn: int | None = None
    address: str | None = None
    tx_id: str | None = None
    network: str | None = None
    reason: str | None = None


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One detection, as published on the security feed and written by ``secmon replay``.

    A finding is opened once per episode.  Later records with the same ``finding_id`` and a
    higher ``revision`` update it (severity escalated, evidence grown) or resolve it
    (``status: resolved``, e.g. the delayed deposit was credited).
    """

    finding_id: str
    kind: str
    severity: Severity
    account_id: str | None
    subject: Subject
    first_seen: str
    last_seen: str
    detected_at: str
    evidence: tuple[str, ...]
    summary: str
    explanation: dict[str, Any]
    detector: str
    status: FindingStatus = "open"
    revision: int = 0
    schema_version: str = SCHEMA_VERSION


def iso_ms(ms: int) -> str:
    """Epoch milliseconds → RFC 3339 UTC with milliseconds, the contract's format."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts_ms(text: str) -> int:
    """RFC 3339 with offset → epoch milliseconds (naive timestamps are rejected)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return int(dt.timestamp() * 1000)


_finding_encoder = msgspec.json.Encoder()
_finding_decoder = msgspec.json.Decoder(Finding)


def encode_finding(finding: Finding) -> bytes:
    return _finding_encoder.encode(finding)


def decode_finding(raw: bytes | str) -> Finding:
    return _finding_decoder.decode(raw)


def money(text: str | None) -> float:
    """A contract decimal string as a float for statistics (exact values stay in the event)."""
    return float(text) if text else 0.0
