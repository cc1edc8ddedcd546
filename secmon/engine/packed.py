"""Every detector's state of one key of an account task, packed into one ``bytes`` value.

Why.  An account touches several detectors in a session (logins, 2FA, transfers), so a
checkpoint that wrote one row per detector key wrote about three rows per account, each its
own encode and its own B-tree upsert: most of a checkpoint's time, and a checkpoint is a
pause of the consume loop.  Packed, a checkpoint writes one row per changed account.  The
cold tier (:mod:`secmon.engine.cold`) holds idle accounts in the very same form, so a frozen
account is checkpointed without an encode, and a restore puts rows straight into the cold
tier.

Layout: ``expires_at`` (8 bytes, little-endian, signed), then the msgpack array of each
detector's state in the task's detector order, ``nil`` where a detector holds nothing for the
key.  ``expires_at`` is when the longest-lived of those states passes its detector's TTL.
A packed checkpoint row has the detector column :data:`PACKED`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

import msgspec

from secmon.detectors.base import Detector

#: The ``detector`` column of a checkpoint row that holds every detector's state of a key.
PACKED = "*"

_EXPIRY_BYTES = 8


class StatePacker:
    """Packs and unpacks one key's states for a fixed list of detectors."""

    def __init__(self, detectors: Sequence[Detector[Any, Any]]) -> None:
        #: The layout: detector names in packing order (stored with each checkpoint).
        self.names = [d.name for d in detectors]
        self._types = {d.name: d.State for d in detectors}
        self.ttls = [d.state.ttl_ms for d in detectors]
        # One value is a tuple with each detector's state or None, encoded and decoded in one
        # call each (a call per detector was most of the cost of a freeze and a thaw).
        bundle = tuple[tuple(Optional[d.State] for d in detectors)]  # type: ignore[misc,valid-type]  # noqa: UP045
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(bundle).decode

    def pack(self, values: Sequence[Any]) -> bytes:
        """Each detector's state (or None; at least one is not) → the packed value."""
        expires = -(2**63)
        for v, ttl in zip(values, self.ttls, strict=True):  # a loop: a generator costs twice as much
            if v is not None and v.t + ttl > expires:
                expires = v.t + ttl
        return expires.to_bytes(_EXPIRY_BYTES, "little", signed=True) + self._encode(values)

    def unpack(self, packed: bytes) -> tuple[Any, ...]:
        """The packed value → each detector's state or None (raises msgspec errors if unreadable)."""
        return self._decode(memoryview(packed)[_EXPIRY_BYTES:])  # type: ignore[no-any-return]


    def reader(self, names: Sequence[str]) -> Callable[[bytes], list[Any]]:
        """Unpacks values written with the layout ``names`` (another detector set: one was
        enabled or disabled since) into this layout: states of detectors no longer run are
        skipped, detectors new here get None."""
        # A state of a detector not run here is skipped undecoded (``Raw`` takes nil too).
        types = [Optional[self._types[n]] if n in self._types else msgspec.Raw for n in names]  # noqa: UP045
        decode = msgspec.msgpack.Decoder(tuple[tuple(types)]).decode  # type: ignore[misc]
        where = [self.names.index(n) if n in self._types else None for n in names]
        width = len(self.names)

        def read(packed: bytes) -> list[Any]:
            out: list[Any] = [None] * width
            for i, value in zip(where, decode(memoryview(packed)[_EXPIRY_BYTES:]), strict=True):
                if i is not None:
                    out[i] = value
            return out

        return read


def expiry(packed: bytes) -> int:
    """When every state of a packed value has passed its TTL."""
    return int.from_bytes(packed[:_EXPIRY_BYTES], "little", signed=True)
