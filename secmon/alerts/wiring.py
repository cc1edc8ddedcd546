"""How the action layer plugs into the service: batch effects and delivery sinks.

``build_effects`` returns what new findings cause inside the batch transaction (beyond the
feed row the core writes); ``build_sinks`` returns the sinks for the action layer's outbox
channels.  Both read the ``alerts`` config section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import Engine

from secmon.alerts.sinks.base import Sink
from secmon.config import Config
from secmon.metrics import Metrics
from secmon.runtime.commit import Effects


def build_effects(config: Config, db: Engine, metrics: Metrics) -> list[Effects]:
    return []


def build_sinks(
    config: Config,
    producer: KafkaProducer,
    consumer_factory: Callable[[], KafkaConsumer],
    metrics: Metrics,
) -> dict[str, Sink]:
    return {}


def describe(config: Config) -> dict[str, Any]:
    return {}
