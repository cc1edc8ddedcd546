"""The file source: JSON Lines event files, read in event-time order.

The contract only promises files ordered by ``occurred_at`` *within an account*.  Timers and
cross-account windows need event-time order across accounts, so the source first reads
every line's ``occurred_at`` (a cheap partial decode).  A file already in order (the usual
case) is then read again front to back; only otherwise are the lines indexed and read in
stably sorted order by seeking.  Lines whose timestamp cannot be read keep their place; the
pipeline dead-letters them.
"""

from __future__ import annotations

import mmap
from array import array
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import msgspec


class _TimeProbe(msgspec.Struct):
    occurred_at: str | None = None


_probe = msgspec.json.Decoder(_TimeProbe)


def _line_time(line: bytes) -> datetime | None:
    """``occurred_at`` as an aware datetime, or None when unreadable (or without offset)."""
    try:
        text = _probe.decode(line).occurred_at
        if not text:
            return None
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (msgspec.DecodeError, ValueError):
        return None
    return dt if dt.tzinfo is not None else None


def _line_ts(line: bytes, previous: int) -> int:
    """``occurred_at`` in ms, or ``previous`` (keep the line in place) when unreadable."""
    dt = _line_time(line)
    if dt is None:
        return previous
    try:
        return int(dt.timestamp() * 1000)
    except (ValueError, OverflowError):
        return previous


class JsonLinesSource:
    """Yields ``(origin, line_index, raw_line)`` for every non-empty line of the files.

    ``origin`` is ``file:<path>`` so dead letters and offsets name the file; ``line_index``
    is 0-based.
    """

    def __init__(self, paths: list[str | Path], *, order_by_time: bool = True) -> None:
        self.paths = [Path(p) for p in paths]
        self.order_by_time = order_by_time

    def count_lines(self) -> int:
        total = 0
        for path in self.paths:
            with path.open("rb") as fh:
                total += sum(1 for line in fh if line.strip())
        return total

    def __iter__(self) -> Iterator[tuple[str, int, bytes]]:
        if not self.order_by_time or self._in_order():
            for path in self.paths:
                yield from self._sequential(path)
            return
        # Index (file, line number, start, end) of every line, then read them in stably
        # sorted order by seeking.
        times = array("q")
        files = array("i")
        lines = array("q")
        starts = array("q")
        ends = array("q")
        maps = [_map(path) for path in self.paths]
        last = -(2**62)
        for fi, data in enumerate(maps):
            prev = last
            for idx, start, end in _spans(data):
                ts = prev = _line_ts(data[start:end], prev)
                last = max(last, ts)
                times.append(ts)
                files.append(fi)
                lines.append(idx)
                starts.append(start)
                ends.append(end)
        origins = [f"file:{path}" for path in self.paths]
        for i in sorted(range(len(times)), key=times.__getitem__):
            fi = files[i]
            yield origins[fi], lines[i], maps[fi][starts[i] : ends[i]].rstrip(b"\r")

    def _in_order(self) -> bool:
        """Whether the lines (files one after another) are already in event-time order: a
        first pass over the timestamps alone, as most files are and then need no index.

        Compares the datetimes themselves (no conversion to ms per line).  Lines in order by
        datetime are in order by ms too; lines in order by ms only (sub-millisecond
        inversions) take the indexed path, whose stable sort by ms keeps them as they are."""
        last: datetime | None = None
        for path in self.paths:
            with path.open("rb") as fh:
                for line in fh:
                    if line.isspace():  # ``not line.strip()``, without the copy
                        continue
                    dt = _line_time(line)
                    if dt is None:  # unreadable: keeps its place, whatever its neighbours
                        continue
                    if last is not None and dt < last:
                        return False
                    last = dt
        return True

    def _sequential(self, path: Path) -> Iterator[tuple[str, int, bytes]]:
        origin = f"file:{path}"
        with path.open("rb") as fh:
            for idx, line in enumerate(fh):
                line = line.rstrip(b"\r\n")
                if line and not line.isspace():  # ``line.strip()``, without the copy
                    yield origin, idx, line


#: What ``bytes.strip()`` removes: a line of only these is skipped.
_BLANK = frozenset(b" \t\n\r\x0b\x0c")


def _spans(data: mmap.mmap | bytes) -> Iterator[tuple[int, int, int]]:
    """``(line number, start, end)`` of every line of ``data`` with more than whitespace."""
    find = data.find
    pos, n, idx = 0, len(data), 0
    while pos < n:
        end = find(b"\n", pos)
        if end < 0:
            end = n
        # The first byte settles it for any real line; only a blank start needs a look.
        if end > pos and (data[pos] not in _BLANK or not data[pos:end].isspace()):
            yield idx, pos, end
        idx += 1
        pos = end + 1


def _map(path: Path) -> mmap.mmap | bytes:
    with path.open("rb") as fh:
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            return b""
