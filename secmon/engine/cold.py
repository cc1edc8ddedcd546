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
and ``cold_after_ms``.

Only where memory is worth it.  A task holding state for at most ``above_accounts`` accounts
freezes nothing: there the unpacked state is small (~1.6 KB an account, ~16 MB at 10,000),
and a thaw and a freeze per session would be CPU spent for nothing.  Such a task does not
even note who it sees (``tracking`` is off: the per-event lookup and the first-sight call
cost ~1,000 instructions an event, 3 % of what the login detectors add).  At the first
generation end past the threshold, tracking starts with every account holding state counted
as seen in the previous generation; at the next one, those not seen since (idle for a whole
generation at least) are frozen.  Tracking stops once nothing is frozen and the task is
small again.  Freezing happens only at the end of a batch (``Task.end_batch``), when no
detector holds a state object across calls (micro-batched scoring has finished).

A frozen value is the packed form of :mod:`secmon.engine.packed`, the form a checkpoint
stores: a frozen account with changes is checkpointed from here without an encode, and a
restore loads checkpoint rows straight into this tier (``load``) without decoding them into
objects.  Nothing here is persisted by the tier itself.

Expiry.  A detector's key would have expired at ``t + state_ttl_ms``; the value expires at
the latest of its detectors' (keys of shorter-lived detectors are dropped when it is thawed,
exactly when the hot dict's expiry would have dropped them).  Values are kept in the order
they were frozen, close to the order of last use, and expiry stops at the first one still
alive: one frozen out of order expires a little late.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from secmon.detectors.base import Detector
from secmon.engine.packed import StatePacker, expiry


class ColdTier:
    """Idle accounts' state of one account task, packed (see the module docstring)."""

    def __init__(
        self, detectors: Sequence[Detector[Any, Any]], packer: StatePacker, cold_after_ms: int, above_accounts: int = 0
    ) -> None:
        """``packer``: the task's, for the same ``detectors`` in the same order;
        ``above_accounts``: freeze only while the task holds state for more accounts."""
        #: per detector: TTL, its keys' dict and its state (to forget expired keys)
        self._slots = [(d.state.ttl_ms, d.state.mapping(), d.state) for d in detectors]
        self._dicts = [data for _, data, _ in self._slots]
        self._pack = packer.pack
        self._unpack = packer.unpack
        self.generation_ms = max(1, cold_after_ms // 2)
        self.above_accounts = above_accounts
        #: account → packed state of its detectors, in the order frozen
        self.values: dict[str, bytes] = {}
        #: whether ``seen`` is kept (``Task`` calls :meth:`touch` only then): while something
        #: is frozen or the task is large enough to freeze (see the module docstring)
        self.tracking = above_accounts <= 0
        #: accounts seen in the current generation (hot), and in the previous ones since the
        #: last freeze (one generation, unless the task held too few accounts to freeze)
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
        for value, (ttl, data, state) in zip(self._unpack(packed), self._slots, strict=True):
            if value is None:
                continue
            self.keys -= 1
            if value.t < horizon_ms - ttl:
                state.forget(account)
                continue
            data[account] = value  # last in the dict: about to be used

    # -- at the end of a batch -----------------------------------------------------------
    def end_batch(self, stream_ms: int) -> int:
        """Close the generation if it is over; returns how many accounts were frozen."""
        if self._generation_end is None:
            self._generation_end = stream_ms + self.generation_ms
            return 0
        if stream_ms < self._generation_end:
            return 0
        self._generation_end = stream_ms + self.generation_ms
        small = self.hot_accounts() <= self.above_accounts
        if not self.tracking:
            if not small:  # grown past the threshold: everyone holding state counts as seen
                self.tracking = True
                self._previous, self.seen = set().union(*self._dicts), set()
            return 0
        if small and not self.values:  # nothing to thaw, nothing to freeze: stop noting
            self.tracking = False
            self._previous, self.seen = set(), set()
            return 0
        if small:  # keep them all unpacked
            previous = self._previous
            previous |= self.seen
            self.seen = set()
            if len(previous) > 2 * self.above_accounts:
                # Accounts come and go (their state expires): keep only those still holding
                # some, or a small task would note every account it ever saw.
                dicts = self._dicts
                self._previous = {a for a in previous if any(a in d for d in dicts)}
            return 0
        idle = self._previous - self.seen
        self._previous, self.seen = self.seen, set()
        for account in idle:
            self._freeze(account)
        return len(idle)

    def hot_accounts(self) -> int:
        """Accounts with unpacked state, about: the most any one detector holds (most
        accounts have a posture and a login state; counting the union would cost a pass)."""
        return max(map(len, self._dicts), default=0)

    def _freeze(self, account: str) -> None:
        """Move the account's state here.  A change not checkpointed yet keeps its key
        marked changed in its detector: the checkpoint writes this packed value for it."""
        values = [data.pop(account, None) for data in self._dicts]
        n = len(values) - values.count(None)  # most detectors hold nothing for most accounts
        if n:
            self.keys += n
            self.values[account] = self._pack(values)

    def load(self, rows: Iterable[tuple[str, bytes]]) -> tuple[int, list[str]]:
        """Load packed checkpoint rows ``(account, value)`` as if frozen: a restart needs no
        more memory than the worker held (unpacked, 1M accounts would take ~2.5 GB for a
        moment).  Each value is decoded once, to check it and count its keys, and kept as
        it came.  Returns the keys loaded and the accounts whose value is unreadable."""
        loaded = []
        bad = []
        n = 0
        for account, packed in rows:
            try:
                held = sum(v is not None for v in self._unpack(packed))
            except (msgspec.DecodeError, msgspec.ValidationError):
                held = 0
            if not held:  # unreadable (or empty, which no checkpoint writes)
                bad.append(account)
                continue
            n += held
            loaded.append((account, packed))
        loaded.sort(key=lambda item: expiry(item[1]))  # in order of expiry, as ``expire`` reads them
        self.values.update(loaded)
        if loaded:
            self.tracking = True  # their next use must thaw them
        self.keys += n
        return n, bad

    # -- expiry and checkpoints ----------------------------------------------------------
    def expire(self, watermark_ms: int) -> dict[int, int]:
        """Drop values whose every key is past its TTL; returns keys dropped per detector."""
        stale = []
        for account, packed in self.values.items():
            if expiry(packed) >= watermark_ms:
                break
            stale.append(account)
        dropped: dict[int, int] = {}
        for account in stale:
            for i, value in enumerate(self._unpack(self.values.pop(account))):
                if value is not None:
                    self._slots[i][2].forget(account)
                    dropped[i] = dropped.get(i, 0) + 1
                    self.keys -= 1
        return dropped

    def __len__(self) -> int:
        return len(self.values)
