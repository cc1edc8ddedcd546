"""The file source: JSON Lines event files, read in event-time order.

The contract only promises files ordered by ``occurred_at`` *within an account*.  Timers and
cross-account windows need event-time order across accounts, so the source first indexes
every line's ``occurred_at`` (a cheap partial decode) and, only when the file is not already
in order, reads the lines in stably sorted order by seeking.  Lines whose timestamp cannot be
read keep their place; the pipeline dead-letters them.
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


def _line_ts(line: bytes, previous: int) -> int:
    """``occurred_at`` in ms, or ``previous`` (keep the line in place) when unreadable."""
    try:
        text = _probe.decode(line).occurred_at
        if not text:
            return previous
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            return previous
        return int(dt.timestamp() * 1000)
    except (msgspec.DecodeError, ValueError, OverflowError):
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
        if not self.order_by_time:
            for path in self.paths:
                yield from self._sequential(path)
            return
        # Index (ts, file, start, end) of every line; merge files by time too.
        times = array("q")
        starts = array("q")
        ends = array("q")
        files = array("i")
        lines = array("q")
        maps: list[mmap.mmap | bytes] = []
        in_order = True
        last = -(2**62)
        for fi, path in enumerate(self.paths):
            data = _map(path)
            maps.append(data)
            pos, n, idx, prev = 0, len(data), 0, last
            while pos < n:
                end = data.find(b"\n", pos)
                if end < 0:
                    end = n
                line = data[pos:end]
                if line.strip():
                    ts = _line_ts(line, prev)
                    if ts < last:
                        in_order = False
                    last = max(last, ts)
                    prev = ts
                    times.append(ts)
                    starts.append(pos)
                    ends.append(end)
                    files.append(fi)
                    lines.append(idx)
                idx += 1
                pos = end + 1
        order = range(len(times)) if in_order else sorted(range(len(times)), key=times.__getitem__)
        for i in order:
            fi = files[i]
            yield f"file:{self.paths[fi]}", lines[i], bytes(maps[fi][starts[i] : ends[i]]).rstrip(b"\r")

    def _sequential(self, path: Path) -> Iterator[tuple[str, int, bytes]]:
        origin = f"file:{path}"
        with path.open("rb") as fh:
            for idx, line in enumerate(fh):
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield origin, idx, line


def _map(path: Path) -> mmap.mmap | bytes:
    with path.open("rb") as fh:
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            return b""
