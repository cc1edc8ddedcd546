"""Drive detectors over in-memory events the way ``secmon replay`` does (no files, no Kafka).

One account task and, when a source-scope detector is among them, one source task wired
in-process; events are decoded with the contract decoder and processed in event-time order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from secmon.config import convert
from secmon.contract import EventDecoder, Finding
from secmon.detectors.base import Detector
from secmon.detectors.registry import DetectorSpec
from secmon.engine.pipeline import Pipeline
from secmon.engine.task import Task

_decoder = EventDecoder()


@dataclass
class Run:
    """Every finding record emitted (all revisions), plus the tasks for state inspection."""

    records: list[Finding] = field(default_factory=list)
    account_task: Task | None = None
    source_task: Task | None = None

    def latest(self, kind: str | None = None) -> list[Finding]:
        """The latest revision of each finding, in order of first emission."""
        out: dict[str, Finding] = {}
        for f in self.records:
            if kind is not None and f.kind != kind:
                continue
            prev = out.get(f.finding_id)
            if prev is None or f.revision > prev.revision:
                out[f.finding_id] = f
        return list(out.values())

    def kinds(self) -> list[str]:
        return [f.kind for f in self.latest()]


def specs(detectors: Mapping[type[Detector[Any, Any]], Mapping[str, Any]]) -> list[DetectorSpec]:
    """Validated specs for some detector classes with options (as in the YAML section)."""
    return [DetectorSpec(cls, convert(dict(opts), cls.Config, cls.name)) for cls, opts in detectors.items()]


def run_events(
    events: Iterable[dict[str, Any]],
    detectors: Mapping[type[Detector[Any, Any]], Mapping[str, Any]],
    *,
    allowed_lateness_ms: int = 0,
) -> Run:
    """Process ``events`` (dicts) through the given detectors; returns what they emitted."""
    run = Run()
    pipeline = Pipeline(specs(detectors), allowed_lateness_ms=allowed_lateness_ms)
    source = pipeline.source_task("test-source", run.records.append) if pipeline.has_source_detectors else None
    account = pipeline.account_task(
        "test-account", run.records.append, source.process_record if source is not None else None
    )
    run.account_task, run.source_task = account, source
    decoded = [_decoder.decode(json.dumps(e).encode()) for e in events]
    decoded.sort(key=lambda e: e.ts)
    for i, event in enumerate(decoded):
        account.process(event, "test", i)
    account.flush()
    if source is not None:
        source.advance_to(account.stream_ms)
        source.flush()
    return run
