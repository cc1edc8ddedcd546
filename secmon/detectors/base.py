"""What a detector is: the whole contract a detector author needs (plus one example detector).

A detector is a small object built from a frozen, validated config.  The engine hands it
events of the types it declares, in event-time order per account, through one method:

    on_event(event, ctx)      # look at one event, update keyed state, maybe ctx.emit(...)

and optionally

    on_timer(key, tag, ctx)   # a timer set with ctx.schedule(...) came due (watermark passed it)
    on_batch_end(ctx)         # once per poll batch: for micro-batched work (model scoring)
    on_finding(finding, ctx)  # a finding of another detector of the same task (``finding_kinds``)

A detector that treats its event types differently may map each type to its own method in
``handlers()``; the engine then calls that method directly (one call per event, not two).

It never touches Kafka, files, the database, HTTP or metrics, and never reads the wall clock:
time is the event's ``ts`` or ``ctx.now_ms`` (the task's stream time).  That keeps detectors
deterministic (a replay gives byte-identical findings) and testable with plain lists.

State lives in :class:`KeyedState` (``self.state``): a dict of small msgspec structs keyed by
account (or IP/ASN for source detectors), each stamped with its last use so idle keys expire
after ``ttl_ms``.  The engine snapshots touched keys at checkpoints and restores them after a
restart or rebalance; a detector keeps nothing that matters outside ``self.state``.  State is
held for every active account, so keep it small: short bounded lists as tuples
(``common.pushed``), and ``delete`` a key whose state is empty again (docs/ARCHITECTURE.md,
"The per-event hot path").

Two scopes.  ``Scope.ACCOUNT`` detectors run in the task of an input partition and see every
event of the accounts in it.  ``Scope.SOURCE`` detectors aggregate by IP, subnet, ASN or
platform-wide key across all partitions: the account tasks forward compact
:class:`SourceRecord` s (keys from the detector's ``source_keys``) through an internal topic
keyed by that key, so one worker sees everything about one source (the Kafka Streams
repartition pattern).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

import msgspec

from secmon.contract import Event, Finding, Severity, Subject, iso_ms


class DetectorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every detector's config: frozen, typed, unknown options rejected at start-up."""

    enabled: bool = True
    #: Idle keys are dropped after this long without an event (event time).
    state_ttl_ms: int = 48 * 3600 * 1000


#: Version of the encoded form of detector state (checkpoints).  Bump it when a state's
#: encoding changes incompatibly (a field type, the field order of an array-like state): a
#: checkpoint of another version restores offsets and timers but no keyed state (it is
#: deleted at the next checkpoint), so detectors start afresh rather than misread it.
#: 2: ``t`` first; ``AtoState`` and ``TxProfile`` array-like, ``PostureState`` a map.
#: 3: the same states; an account task writes one packed row per account
#: (:mod:`secmon.engine.packed`) instead of one per detector key.  Format 2 is still read.
STATE_FORMAT: Final = 3


class KeyState(msgspec.Struct, gc=False, omit_defaults=True):
    """Base of per-key state.  ``t`` is the event time of the key's last update (for expiry).

    Encoded compactly, since the encoded form is what checkpoints store and what the cold tier
    (:mod:`secmon.engine.cold`) keeps in memory for idle accounts: as an array
    (``array_like``, ``t`` first) when most fields are set, or as a map without its default
    fields (``omit_defaults``; msgspec omits none from an array) when most are not."""

    t: int = 0


class Scope(StrEnum):
    ACCOUNT = "account"
    SOURCE = "source"


class SourceRecord(msgspec.Struct, array_like=True, gc=False, omit_defaults=True):
    """An event (or derived fact) forwarded to the source tasks, keyed by ``key``.

    ``key`` is ``"<dimension>:<value>"``, e.g. ``ip:203.0.113.7``, ``net:203.0.113.0/24``,
    ``asn:64500``, ``wdfail:bank_rejected``.  ``seq`` orders the records of one origin
    (input topic-partition) so that a record re-forwarded after a crash is recognised.
    """

    key: str
    event_type: str
    event_id: str
    account_id: str
    ts: int
    ip: str | None = None
    asn: int | None = None
    country: str | None = None
    device_id: str | None = None
    reason: str | None = None
    network: str | None = None
    amount_usd: float | None = None
    origin: str = ""
    seq: int = 0


S = TypeVar("S", bound=KeyState)
C = TypeVar("C", bound=DetectorConfig)


class KeyedState(Generic[S]):
    """Bounded, serialisable per-key state of one detector in one task.

    ``get`` reads; ``put`` stores and marks the key dirty (for the next checkpoint) and
    stamps its last use; ``expire`` drops keys idle for longer than the TTL.  Detectors that
    mutate a state struct in place must call ``put`` (or ``touch``) so the change is saved.

    Keys are kept in order of last ``put``, so ``expire`` stops at the first key still within
    the TTL: its cost follows the expired keys, not all keys (a full scan every minute of
    event time costs seconds per minute with 10^5 accounts).  A key stamped out of event-time
    order (a late event) expires once the keys used before it have.

    The stamp is renewed (and the key moved last) only once it is ``ttl_ms / 64`` old: a
    key used again and again (an account logging in all day) then costs a set insertion per
    ``put``, not a dict delete-and-insert, and expires at most 1.6 % of its TTL early.
    """

    __slots__ = (
        "_data", "_dirty", "_fresh", "_removed", "_restamp_ms", "_unordered", "get", "state_type", "ttl_ms",
    )  # fmt: skip

    def __init__(self, state_type: type[S], ttl_ms: int) -> None:
        self.state_type = state_type
        self.ttl_ms = ttl_ms
        self._restamp_ms = ttl_ms // 64
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        #: Keys created since the last drain: no checkpoint holds them, so deleting one
        #: needs no row (sources where one failed login came and went between checkpoints
        #: were half the source tasks' rows).
        self._fresh: set[str] = set()
        self._unordered = False
        self._set_data({})

    def _set_data(self, data: dict[str, S]) -> None:
        self._data = data
        #: ``get(key)``: the state of ``key`` or None.  The dict's own ``get``, bound here:
        #: detectors call it several times per event and a wrapper method doubled its cost.
        self.get: Callable[[str], S | None] = data.get

    def put(self, key: str, value: S, now_ms: int) -> None:
        data = self._data
        if now_ms - value.t >= self._restamp_ms:  # a new struct has t = 0
            value.t = now_ms
            if key in data:
                del data[key]  # re-inserted last: the dict stays in order of last use
            elif key not in self._removed:  # (removed since the drain: a checkpoint holds it)
                self._fresh.add(key)
        data[key] = value
        self._dirty.add(key)

    touch = put

    def delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            self._dirty.discard(key)
            if key in self._fresh:
                self._fresh.remove(key)
            else:
                self._removed.add(key)

    def expire(self, watermark_ms: int) -> int:
        """Drop keys idle since before ``watermark_ms - ttl_ms``; returns how many."""
        horizon = watermark_ms - self.ttl_ms
        if self._unordered:  # restored keys come in any order: sort once by last use
            ordered = sorted(self._data.items(), key=lambda kv: kv[1].t)
            self._data.clear()  # the same dict: ``get`` and the cold tier hold it
            self._data.update(ordered)
            self._unordered = False
        stale = []
        for k, v in self._data.items():
            if v.t >= horizon:
                break
            stale.append(k)
        for key in stale:
            self.delete(key)
        return len(stale)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def items(self) -> Iterator[tuple[str, S]]:
        return iter(self._data.items())

    # -- checkpointing (engine only) -------------------------------------------------
    def pending_changes(self) -> int:
        """Keys changed or removed since the last :meth:`drain_changes` or :meth:`clear_changes`."""
        return len(self._dirty) + len(self._removed)

    def drain_changes(self) -> tuple[dict[str, S], set[str]]:
        """Keys changed and keys removed since the last call."""
        changed = {k: self._data[k] for k in self._dirty if k in self._data}
        removed = self._removed
        self.clear_changes()
        return changed, removed

    def load(self, key: str, value: S) -> None:
        self._data[key] = value
        self._unordered = True

    def pending_keys(self) -> set[str]:
        """Keys changed or removed since the last drain (a new set; packed checkpoints: the
        task writes each of them as it now stands, hot or in the cold tier, or deletes it)."""
        return self._dirty | self._removed

    def clear_changes(self) -> None:
        """Forget what changed: a checkpoint took it, or none will (a replay)."""
        self._dirty = set()
        self._removed = set()
        self._fresh.clear()

    # -- the cold tier (engine only, see secmon.engine.cold) ----------------------------
    def mapping(self) -> dict[str, S]:
        """The dict of keys itself: the cold tier and packed checkpoints move keys in and
        out of it directly, thousands a second (a call per key was most of their cost).  It
        is never replaced."""
        return self._data

    def forget(self, key: str) -> None:
        """Delete ``key`` from the checkpoint without holding it here: a key the cold tier
        held expired, or a restored key could not be read."""
        self._dirty.discard(key)
        self._removed.add(key)


class Context(Protocol):
    """What the engine offers a detector while it handles an event, timer or batch end."""

    @property
    def now_ms(self) -> int:
        """Stream time of the task: the largest event time seen (or the firing timer's time)."""

    @property
    def watermark_ms(self) -> int:
        """Stream time minus the allowed lateness: timers up to here have fired."""

    def emit(
        self,
        *,
        kind: str,
        severity: Severity,
        dedup_key: str,
        account_id: str | None,
        first_seen_ms: int,
        last_seen_ms: int,
        evidence: Iterable[str],
        summary: str,
        explanation: dict[str, Any],
        subject: Subject | None = None,
        detected_at_ms: int | None = None,
        status: str = "open",
        revision: int = 0,
    ) -> Finding:
        """Publish a finding.  ``finding_id`` is derived from ``kind`` and ``dedup_key``:
        the same evidence gives the same id on every run."""

    def schedule(self, key: str, due_ms: int, tag: str = "") -> None:
        """Call ``on_timer(key, tag)`` once the watermark reaches ``due_ms`` (replaces an
        earlier timer with the same key and tag)."""

    def cancel(self, key: str, tag: str = "") -> None:
        """Forget a timer set with ``schedule``."""

    def forward(self, record: SourceRecord) -> None:
        """Send a record to the source tasks (account detectors only).  Leave ``origin`` and
        ``seq`` unset: the task stamps them so a re-forward after a crash counts once."""

    @property
    def can_forward(self) -> bool:
        """Whether forwarded records reach a source task (some source detector is enabled)."""


class Detector(ABC, Generic[C, S]):
    """Base of every detector.  Subclasses set the class attributes and ``on_event``."""

    #: Registry id; also the ``detector`` field of its findings and the YAML config key.
    name: ClassVar[str]
    #: Finding kinds this detector may emit (from the contract's vocabulary).
    kinds: ClassVar[tuple[str, ...]]
    #: Event types (contract ``event_type``) this detector wants to see.
    event_types: ClassVar[frozenset[str]] = frozenset()
    #: Kinds of other detectors' findings (same task) passed to ``on_finding``.
    finding_kinds: ClassVar[frozenset[str]] = frozenset()
    scope: ClassVar[Scope] = Scope.ACCOUNT
    Config: ClassVar[type[DetectorConfig]] = DetectorConfig
    State: ClassVar[type[KeyState]] = KeyState

    def __init__(self, config: C) -> None:
        self.config = config
        self.state: KeyedState[S] = KeyedState(self.State, config.state_ttl_ms)  # type: ignore[arg-type]

    @abstractmethod
    def on_event(self, event: Any, ctx: Context) -> None:
        """Handle one event (``Event`` for account detectors, ``SourceRecord`` for source ones)."""

    def handlers(self) -> dict[str, Callable[[Any, Context], None]]:
        """The method the engine calls for each event type: ``on_event`` for every type of
        ``event_types`` unless overridden.  A detector that dispatches on the event's type
        returns one method per type instead, which saves a call on the hot path."""
        return dict.fromkeys(self.event_types, self.on_event)

    def on_timer(self, key: str, tag: str, ctx: Context) -> None:
        """A timer set with ``ctx.schedule`` came due."""

    def on_batch_end(self, ctx: Context) -> None:
        """End of a poll batch (micro-batched scoring goes here)."""

    def on_finding(self, finding: Finding, ctx: Context) -> None:
        """A finding of a kind in ``finding_kinds`` was emitted by another detector."""

    # -- source detectors ----------------------------------------------------------------
    @classmethod
    def source_keys(cls, event: Event, config: DetectorConfig) -> Iterable[str]:
        """Distinct keys under which an account task forwards ``event`` (source detectors only).

        Return an empty iterable to not forward it.  Records forwarded explicitly by an
        account detector (``ctx.forward``) need no entry here."""
        return ()

    @classmethod
    def forwarded_types(cls, config: DetectorConfig) -> Iterable[str]:
        """Event types the account tasks pass to ``source_keys`` (source detectors only).

        Defaults to ``event_types``; a source detector fed only by ``ctx.forward`` returns
        ``()``."""
        return cls.event_types

    def extra_state(self) -> bytes | None:
        """Detector-wide (not per-key) state to checkpoint, e.g. a learned allowlist."""
        return None

    def restore_extra_state(self, blob: bytes) -> None:
        """Restore what ``extra_state`` returned."""


def finding_id(kind: str, dedup_key: str) -> str:
    """Deterministic id: the same kind and evidence key give the same id on every run."""
    return hashlib.blake2b(f"{kind}|{dedup_key}".encode(), digest_size=12).hexdigest()


def make_finding(
    *,
    detector: str,
    kind: str,
    severity: Severity,
    dedup_key: str,
    account_id: str | None,
    first_seen_ms: int,
    last_seen_ms: int,
    detected_at_ms: int,
    evidence: Iterable[str],
    summary: str,
    explanation: dict[str, Any],
    subject: Subject | None = None,
    status: str = "open",
    revision: int = 0,
    max_evidence: int = 20,
) -> Finding:
    ev = tuple(evidence)[:max_evidence]
    return Finding(
        finding_id=finding_id(kind, dedup_key),
        kind=kind,
        severity=severity,
        account_id=account_id,
        subject=subject or Subject(),
        first_seen=iso_ms(first_seen_ms),
        last_seen=iso_ms(last_seen_ms),
        detected_at=iso_ms(detected_at_ms),
        evidence=ev,
        summary=summary,
        # A snapshot: a detector may pass lists of its own state, which go on changing after
        # the finding is emitted (and before it is written, at the end of the batch).
        explanation=msgspec.to_builtins(explanation),
        detector=detector,
        status=status,  # type: ignore[arg-type]
        revision=revision,
    )


DetectorFactory = Callable[[DetectorConfig], Detector[Any, Any]]
