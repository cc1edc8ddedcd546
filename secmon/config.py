"""Typed configuration: one YAML file, validated at start-up, secrets hidden from logs.

Every section has sane defaults, so an empty file (or none) runs the embedded default:
the broker on ``127.0.0.1:9092`` and a SQLite file.  ``${NAME}`` and ``${NAME:-default}``
in string values are read from the environment, so secrets stay out of the file.
Unknown keys are errors (a typo fails at start-up, not at 3 a.m.).

The ``detectors`` section maps a detector name to its options (validated against the
detector's own ``Config``); ``alerts`` and ``api`` are validated by their packages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml


class Secret:
    """A string that never shows itself in ``repr``, logs or ``check-config`` output."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Topics(_Base, frozen=True):
    auth: str = "auth.events"
    wallet: str = "wallet.events"
    snapshots: str = "account.snapshots"
    findings: str = "secmon.findings"
    dlq: str = "secmon.dlq"
    repartition: str = "secmon.repartition"
    notifications: str = "secmon.notifications"

    def inputs(self) -> tuple[str, str, str]:
        return (self.auth, self.wallet, self.snapshots)


class KafkaConfig(_Base, frozen=True):
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "secmon"
    client_id: str = "secmon"
    topics: Topics = Topics()
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: Secret = Secret("")
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    #: Events per poll batch, at most (a batch is one database transaction): 10,000 took
    #: ~7 % less CPU per event than 5,000 when catching up; live batches are far smaller.
    max_poll_records: int = 10_000
    max_poll_interval_ms: int = 300_000
    #: How long the broker may hold a fetch waiting for data.  Each hop (input, repartition)
    #: can cost up to this much latency on brokers that hold fetches to the limit (Tansu
    #: does); an idle worker makes about 1000/this fetch requests per second per broker.
    fetch_max_wait_ms: int = 100
    #: Longest wait for the producer to deliver before a checkpoint; past it the checkpoint
    #: fails (and is retried) rather than blocking the loop, or shutdown, for ever.
    flush_timeout_s: float = 30.0
    #: Run the worker's consumer (fetching and kafka-python's pure-Python record parsing) in
    #: a child process that reads a batch ahead, so parsing overlaps with detection on a
    #: second core (``secmon/sources/fetch_process.py``).  ``false``: all in one process.
    #: ``auto``: a fetch process when the host has two cores for each of its workers (see
    #: ``secmon run --workers``); with fewer, the extra process's hand-over costs more than
    #: it overlaps (two workers on two cores: 0.51-0.60 of the ceiling with, 0.58-0.69 without).
    fetch_process: bool | Literal["auto"] = "auto"
    #: Create missing topics at start-up (demo/dev); production topics are made by ops.
    create_topics: bool = True
    partitions: int = 4
    replication_factor: int = 1

    def client_options(self) -> dict[str, Any]:
        """Connection options shared by consumers, producers and the admin client."""
        opts: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            opts |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password.reveal(),
            }
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name):
                opts[name] = getattr(self, name)
        return opts


class StoreConfig(_Base, frozen=True):
    #: SQLAlchemy URL: ``sqlite:///secmon.db`` (default; the workers of one host) or
    #: ``postgresql+psycopg://user@host/db`` (workers on several hosts).
    url: Secret = Secret("sqlite:///secmon.db")


class EngineConfig(_Base, frozen=True):
    #: Events older than stream time minus this are late (still processed, counted).
    allowed_lateness_ms: int = 5_000
    #: A partition with no events for this long (wall clock) advances its stream time by
    #: the wall clock, so timers ("not credited within 30 min") still fire.
    idle_timeout_ms: int = 10_000
    #: How often each task's detector state is checkpointed with its offsets (one task at a
    #: time, spread over the interval, so no batch waits for all of them).
    checkpoint_interval_ms: int = 5_000
    #: ...or sooner, every task at once, once they would write this many state rows (an account task
    #: writes one per changed account, a source task one per changed key): the loop waits
    #: while a checkpoint is written (~5 µs a row), so this bounds that pause (and the
    #: latency it adds) under load.
    checkpoint_max_changes: int = 10_000
    max_event_bytes: int = 64 * 1024
    #: An account idle this long (event time) has its detectors' state packed into one
    #: value until its next event (~300 B instead of ~1.6 KB; one decode per session).
    #: 0 keeps every account's state unpacked.
    cold_after_ms: int = 10 * 60_000
    #: ...in a task (one per input partition) holding state for more than this many
    #: accounts: below it the unpacked state is small (~16 MB at 10,000 accounts) and a
    #: thaw and a freeze per session would cost CPU for nothing.  0: freeze from the start.
    cold_above_accounts: int = 10_000
    #: Replay: events per micro-batch (batch-end hooks, e.g. model scoring).
    replay_batch_size: int = 4_096
    #: Live: how long a task waits for an input whose lag is not known yet (no fetch
    #: response since assignment) before ordering without it.
    max_task_idle_ms: int = 2_000
    #: Live: an input that drained while its last event is more than ``merge_skew_ms``
    #: (event time) behind the others holds them for ``merge_quiet_ms`` (wall clock) — a
    #: backfill's producer may still be flushing older events to it.
    merge_skew_ms: int = 5_000
    merge_quiet_ms: int = 500
    #: Live: event-time alignment of a worker's account partitions (Flink's watermark
    #: alignment).  A source task holds each forwarded login until every account partition
    #: has passed its time, so when partitions are fetched unevenly while catching up a
    #: backlog (measured on the bench: a day and more apart) it holds, and checkpoints, all
    #: that lies between.  A partition whose stream time runs this far ahead of the slowest
    #: one that still has records to fetch is paused until that one is within half of it.
    #: 0: never pause.
    max_partition_skew_ms: int = 5 * 60_000

    def __post_init__(self) -> None:
        negative = [name for name in self.__struct_fields__ if getattr(self, name) < 0]
        if negative:
            raise ValueError(f"must not be negative: {', '.join(negative)}")
        if self.replay_batch_size < 1 or self.max_event_bytes < 1:
            raise ValueError("replay_batch_size and max_event_bytes must be at least 1")


class DeliveryConfig(_Base, frozen=True):
    """The outbox dispatcher: retries, leases and the backpressure bound."""

    batch_size: int = 500
    max_attempts: int = 15
    base_backoff_ms: int = 500
    max_backoff_ms: int = 300_000
    #: A row in flight longer than this is presumed orphaned by a crashed dispatcher.
    lease_ms: int = 60_000
    #: Consumption pauses while more messages than this wait for delivery.
    max_pending: int = 100_000


class ServerConfig(_Base, frozen=True):
    host: str = "127.0.0.1"
    port: int = 9464


class LoggingConfig(_Base, frozen=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Config(_Base, frozen=True):
    app_id: str = "secmon"
    kafka: KafkaConfig = KafkaConfig()
    store: StoreConfig = StoreConfig()
    engine: EngineConfig = EngineConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    server: ServerConfig = ServerConfig()
    logging: LoggingConfig = LoggingConfig()
    detectors: dict[str, dict[str, Any]] = {}
    alerts: dict[str, Any] = {}
    api: dict[str, Any] = {}


class ConfigError(ValueError):
    """The configuration file is invalid; the message says where."""


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set")

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Secret:
        if not isinstance(obj, str):
            raise ValueError("expected a string")
        return Secret(obj)
    raise NotImplementedError


def convert(data: Any, typ: type[Any], where: str = "") -> Any:
    """``msgspec.convert`` with :class:`Secret` support and a readable error."""
    try:
        return msgspec.convert(data, typ, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML config file (or none: all defaults) and validate it."""
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded
    if overrides:
        data = _merge(data, overrides)
    return convert(_expand_env(data), Config, str(path or "config"))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Secret):
        return "***" if obj else ""
    raise NotImplementedError


def redacted(config: Any) -> Any:
    """A plain, printable form of a config with every secret masked."""
    return msgspec.to_builtins(config, enc_hook=_enc_hook)
