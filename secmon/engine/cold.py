"""The cold tier of account state: an idle account's detector state, packed into one value.

Why.  An account's state is a handful of small Python objects per detector — about 1.6 KB
for an account that logged in, passed 2FA and moved money, most of it object headers.  At any
moment most active accounts are idle (a user's events come in sessions), and the encoded
form of the same state (what a checkpoint stores) is about 300 bytes.  So an account idle for
``cold_after_ms`` of event time has the state of every account detector moved out of their
dicts into one ``bytes`` value here, and its next event moves it back before any detector
runs.  That is Flink's RocksDB state backend, which keeps all keyed state serialised, applied
only to what is not in use: a session pays one decode at its start, not one per event.

How idleness is known without a clock per key.  The task notes each account the first time
it sees it in a *generation* (``seen``: one set lookup per event).  Every
``cold_after_ms / 2`` of stream time the generation ends, and the accounts seen in the
previous generation but not in this one are frozen: idle for between ``cold_after_ms / 2``
and ``cold_after_ms``.  Freezing happens only at the end of a batch (``Task.end_batch``), when
no detector holds a state object across calls (micro-batched scoring has finished).

A frozen value is ``expires_at`` (8 bytes) followed by the msgpack array of each detector's
state (nil where it holds none), encoded as a checkpoint encodes it.  Nothing here is ever
persisted; the checkpoint goes on storing each detector's key as before (a change not yet
checkpointed when its key is frozen is written from here, see ``Task.changes``), and a
restore packs the checkpointed keys straight into this tier (``restore``).

Expiry.  A detector's key would have expired at ``t + state_ttl_ms``; the value expires at
the latest of its detectors' (keys of shorter-lived detectors are dropped when it is thawed,
exactly when the hot dict's expiry would have dropped them).  Values are kept in the order
they were frozen, close to the order of last use, and expiry stops at the first one still
alive: one frozen out of order expires a little late.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

import msgspec

from secmon.detectors.base import Detector

_EXPIRY_BYTES = 8


class ColdTier:
    """Idle accounts' state of one account task, packed (see the module docstring)."""

    def __init__(
        self,
        detectors: Sequence[Detector[Any, Any]],
        decoders: Sequence[Callable[[bytes], Any]],
        cold_after_ms: int,
    ) -> None:
        """``decoders``: each detector's checkpoint decoder, in the order of ``detectors``."""
        self._states = [d.state for d in detectors]
        #: per detector: TTL, and its state's dict, changed keys and frozen changed keys
        self._slots = [(d.state.ttl_ms, *d.state.cold_handles()) for d in detectors]
        self._decoders = list(decoders)
        # One value is a tuple with each detector's state or None, encoded and decoded in
        # one call each (a call per detector was most of the cost of a freeze and a thaw).
        bundle = tuple[tuple(Optional[d.State] for d in detectors)]  # type: ignore[misc]  # noqa: UP045
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(bundle).decode
        self.generation_ms = max(1, cold_after_ms // 2)
        #: account → packed state of its detectors, in the order frozen
        self.values: dict[str, bytes] = {}
        #: accounts seen in the current generation (hot), and in the previous one
        self.seen: set[str] = set()
        self._previous: set[str] = set()
        self._generation_end: int | None = None
        #: detector keys held here (for the state-keys metric)
        self.keys = 0

    # -- before a detector runs ----------------------------------------------------------
    def touch(self, account: str, horizon_ms: int) -> None:
        """``account`` is about to be used: note it in this generation, thaw it if frozen.

        Every detector's state of the account is thawed at once: thawing only the ones an
        event needs was measured slower (a session's next events need the others).
        ``horizon_ms`` is the watermark of the task's last expiry pass: a key idle since
        before that minus its TTL would have been expired by now, so it is dropped."""
        self.seen.add(account)
        packed = self.values.pop(account, None)
        if packed is None:
            return
        for i, value in enumerate(self._unpack(packed)):
            if value is None:
                continue
            self.keys -= 1
            ttl, data, dirty, frozen = self._slots[i]
            if value.t < horizon_ms - ttl:
                self._states[i].forget(account)
                continue
            data[account] = value  # last in the dict: about to be used
            if account in frozen:  # a change not checkpointed yet: the hot key carries it
                frozen.discard(account)
                dirty.add(account)

    # -- at the end of a batch -----------------------------------------------------------
    def end_batch(self, stream_ms: int) -> int:
        """Close the generation if it is over; returns how many accounts were frozen."""
        if self._generation_end is None:
            self._generation_end = stream_ms + self.generation_ms
            return 0
        if stream_ms < self._generation_end:
            return 0
        self._generation_end = stream_ms + self.generation_ms
        idle = self._previous - self.seen
        self._previous, self.seen = self.seen, set()
        for account in idle:
            self._freeze(account)
        return len(idle)

    def _freeze(self, account: str) -> None:
        values = []
        n = 0
        for _, data, dirty, frozen in self._slots:
            value = data.pop(account, None)
            values.append(value)
            if value is None:
                continue  # most detectors hold nothing for most accounts
            n += 1
            if account in dirty:  # not checkpointed yet: written from here (Task.changes)
                dirty.discard(account)
                frozen.add(account)
        if n:
            self.keys += n
            self.values[account] = self._pack(values)

    def restore(self, rows: Iterable[tuple[int, str, bytes]]) -> tuple[int, int]:
        """Load checkpointed keys (detector index, account, encoded state) packed, as if
        frozen: a restart needs no more memory than the worker held (unpacked, 1M accounts
        would take ~2.5 GB for a moment).  Returns the keys loaded and the keys unreadable."""
        by_account: dict[str, list[tuple[int, bytes]]] = {}
        for i, account, blob in rows:
            by_account.setdefault(account, []).append((i, blob))
        packed = []
        n = bad = 0
        for account, blobs in by_account.items():
            values: list[Any] = [None] * len(self._slots)
            for i, blob in blobs:
                try:
                    values[i] = self._decoders[i](blob)
                    n += 1
                except (msgspec.DecodeError, msgspec.ValidationError):
                    self._states[i].forget(account)  # unreadable: starts afresh, deleted
                    bad += 1
            if any(v is not None for v in values):
                packed.append((account, self._pack(values)))
        packed.sort(key=lambda item: _expiry(item[1]))  # in order of expiry, as ``expire`` reads them
        self.values.update(packed)
        self.keys += n
        return n, bad

    # -- expiry and checkpoints ----------------------------------------------------------
    def expire(self, watermark_ms: int) -> dict[int, int]:
        """Drop values whose every key is past its TTL; returns keys dropped per detector."""
        stale = []
        for account, packed in self.values.items():
            if _expiry(packed) >= watermark_ms:
                break
            stale.append(account)
        dropped: dict[int, int] = {}
        for account in stale:
            for i, value in enumerate(self._unpack(self.values.pop(account))):
                if value is not None:
                    self._states[i].forget(account)
                    dropped[i] = dropped.get(i, 0) + 1
                    self.keys -= 1
        return dropped

    def blob(self, index: int, account: str) -> bytes | None:
        """Detector ``index``'s state of a frozen ``account``, encoded (for a checkpoint)."""
        packed = self.values.get(account)
        if packed is None:
            return None
        value = self._unpack(packed)[index]
        return None if value is None else self._encode(value)

    def __len__(self) -> int:
        return len(self.values)

    # -- the packed form -----------------------------------------------------------------
    def _pack(self, values: Sequence[Any]) -> bytes:
        """Each detector's state (or None) → ``expires_at`` + the encoded tuple."""
        expires = max(v.t + slot[0] for v, slot in zip(values, self._slots, strict=True) if v is not None)
        return expires.to_bytes(_EXPIRY_BYTES, "little", signed=True) + self._encode(values)

    def _unpack(self, packed: bytes) -> tuple[Any, ...]:
        return self._decode(memoryview(packed)[_EXPIRY_BYTES:])  # type: ignore[no-any-return]


def _expiry(packed: bytes) -> int:
    """When every detector key of a packed value has passed its TTL."""
    return int.from_bytes(packed[:_EXPIRY_BYTES], "little", signed=True)
