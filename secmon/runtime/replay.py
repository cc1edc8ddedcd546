"""``secmon replay``: run JSON Lines files through the same tasks the live service runs.

One account task and one source task, wired in-process (the source task receives forwarded
records synchronously instead of through the repartition topic).  Findings are compacted
to their latest revision per ``finding_id`` and written in order of first emission, so two
runs over the same file give byte-identical output.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from secmon.contract import BadRecord, EventDecoder, Finding, encode_finding
from secmon.detectors.base import SourceRecord
from secmon.engine.deadletter import DeadLetter, encode_dead_letter
from secmon.engine.pipeline import Pipeline
from secmon.sources.files import JsonLinesSource


@dataclass
class FindingLog:
    """Collects emitted findings, keeping the latest revision of each ``finding_id``."""

    latest: dict[str, Finding] = field(default_factory=dict)
    records: int = 0
    listeners: list[Callable[[Finding], None]] = field(default_factory=list)

    def __call__(self, finding: Finding) -> None:
        self.records += 1
        prev = self.latest.get(finding.finding_id)
        if prev is None or finding.revision > prev.revision:
            self.latest[finding.finding_id] = finding
        for listener in self.listeners:
            listener(finding)

    def findings(self) -> list[Finding]:
        return list(self.latest.values())


@dataclass
class ReplayResult:
    events: int = 0
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    finding_records: int = 0
    seconds: float = 0.0
    #: Keys the detectors hold at the end (both tasks, hot or in the cold tier).
    state_keys: int = 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def replay(
    paths: Iterable[str | Path],
    pipeline: Pipeline,
    *,
    max_event_bytes: int = 64 * 1024,
    batch_size: int = 4096,
    dead_letters: IO[bytes] | None = None,
    progress: bool | None = None,
    on_finding: Callable[[Finding], None] | None = None,
) -> ReplayResult:
    """Process every line of ``paths``; return the compacted findings and counters."""
    source = JsonLinesSource(list(paths))
    decoder = EventDecoder(max_event_bytes)
    log = FindingLog()
    if on_finding is not None:
        log.listeners.append(on_finding)
    source_task = pipeline.source_task("replay-source", log) if pipeline.has_source_detectors else None
    # Forwarded records go straight to the source task (in process: no repartition topic offsets).
    forward: Callable[[SourceRecord], None] | None = source_task.dispatch_record if source_task is not None else None
    account_task = pipeline.account_task("replay-account", log, forward)
    result = ReplayResult()
    bar = _progress_bar(source, progress)
    started = time.perf_counter()
    process = account_task.process
    decode = decoder.decode
    in_batch = 0
    for origin, index, raw in source:
        try:
            event = decode(raw)
        except BadRecord as bad:
            result.dead_letters += 1
            result.dead_letter_reasons[bad.reason] = result.dead_letter_reasons.get(bad.reason, 0) + 1
            if dead_letters is not None:
                dl = DeadLetter.of(
                    raw, reason=bad.reason, detail=bad.detail, topic=origin, partition=None,
                    offset=index, event_id=bad.event_id,
                )
                dead_letters.write(encode_dead_letter(dl) + b"\n")
            continue
        # The position in processing (event-time) order, not the line number: forwarded
        # records take their ``seq`` from it, and a source task drops a record whose seq does
        # not grow, so an unsorted file would otherwise lose forwards.
        process(event, origin, result.events)
        result.events += 1
        in_batch += 1
        if in_batch >= batch_size:
            in_batch = 0
            account_task.end_batch()
            account_task.forget_changes()  # no checkpoints here
            if source_task is not None:
                source_task.advance_to(account_task.stream_ms)
                source_task.end_batch()
                source_task.forget_changes()
            if bar is not None:
                bar.update(batch_size)
    account_task.flush()
    if source_task is not None:
        source_task.advance_to(account_task.stream_ms)
        source_task.flush()
    result.seconds = time.perf_counter() - started
    result.state_keys = account_task.state_keys() + (source_task.state_keys() if source_task is not None else 0)
    if bar is not None:
        bar.update(in_batch)
        bar.close()
    result.findings = log.findings()
    result.finding_records = log.records
    return result


def write_findings(findings: Iterable[Finding], out: IO[bytes]) -> int:
    n = 0
    for finding in findings:
        out.write(encode_finding(finding) + b"\n")
        n += 1
    return n


def _progress_bar(source: JsonLinesSource, progress: bool | None):  # type: ignore[no-untyped-def]
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=source.count_lines(), unit="ev", unit_scale=True, desc="replay", file=sys.stderr)
