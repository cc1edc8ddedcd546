"""Builds tasks from the enabled detectors; the one place that knows both scopes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from secmon.config import EngineConfig
from secmon.contract import Finding
from secmon.detectors.base import Scope, SourceRecord
from secmon.detectors.registry import DetectorSpec
from secmon.engine.task import SourceSpec, Task, TaskHooks

_ENGINE_DEFAULTS = EngineConfig()
#: Default of ``engine.cold_after_ms``: an account idle this long has its state packed.
COLD_AFTER_MS = _ENGINE_DEFAULTS.cold_after_ms
#: Default of ``engine.cold_above_accounts``: a task with fewer accounts freezes none.
COLD_ABOVE_ACCOUNTS = _ENGINE_DEFAULTS.cold_above_accounts


class Pipeline:
    """Factory of account tasks and source tasks for one detector configuration."""

    def __init__(
        self,
        specs: Sequence[DetectorSpec],
        *,
        allowed_lateness_ms: int = 5_000,
        hooks: Callable[[str], TaskHooks] | None = None,
        cold_after_ms: int = COLD_AFTER_MS,
        cold_above_accounts: int = COLD_ABOVE_ACCOUNTS,
    ) -> None:
        self.specs = list(specs)
        self.account_specs = [s for s in self.specs if s.scope is Scope.ACCOUNT]
        self.source_detector_specs = [s for s in self.specs if s.scope is Scope.SOURCE]
        self.allowed_lateness_ms = allowed_lateness_ms
        self.cold_after_ms = cold_after_ms
        self.cold_above_accounts = cold_above_accounts
        self._hooks = hooks or (lambda task_id: TaskHooks())
        #: event type → how account tasks derive source keys for it
        self.forwarding: dict[str, list[SourceSpec]] = {}
        for spec in self.source_detector_specs:
            for et in spec.cls.forwarded_types(spec.config):
                self.forwarding.setdefault(et, []).append((spec.cls.source_keys, spec.config))

    @property
    def has_source_detectors(self) -> bool:
        return bool(self.source_detector_specs)

    def account_task(
        self, task_id: str, emit: Callable[[Finding], None], forward: Callable[[SourceRecord], None] | None
    ) -> Task:
        return Task(
            task_id,
            [s.build() for s in self.account_specs],
            emit=emit,
            forward=forward,
            source_specs=self.forwarding if forward is not None else None,
            allowed_lateness_ms=self.allowed_lateness_ms,
            hooks=self._hooks(task_id),
            cold_after_ms=self.cold_after_ms,
            cold_above_accounts=self.cold_above_accounts,
        )

    def source_task(self, task_id: str, emit: Callable[[Finding], None], *, ordered_by_upstream: bool = False) -> Task:
        """A source task; ``ordered_by_upstream`` when records arrive from several account
        tasks through Kafka (see :class:`Task`)."""
        return Task(
            task_id,
            [s.build() for s in self.source_detector_specs],
            emit=emit,
            allowed_lateness_ms=self.allowed_lateness_ms,
            hooks=self._hooks(task_id),
            ordered_by_upstream=ordered_by_upstream,
        )

    def kinds(self) -> list[str]:
        return sorted({k for s in self.specs for k in s.cls.kinds})

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "scope": str(s.scope), "kinds": list(s.cls.kinds)} for s in self.specs
        ]
