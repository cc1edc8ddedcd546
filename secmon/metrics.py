"""Prometheus metrics, created on an injected registry (no hidden global state).

Labels are bounded: topic, event type, reason, kind, severity, detector, channel, outcome,
category.  Never an account id or an IP.  The names here are the ones ``deploy/`` alerts and
dashboards use (a test checks that every metric they name exists).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from secmon.contract import BAD_RECORD_REASONS

#: Outcomes of an outbox delivery attempt (``secmon_sink_deliveries_total{outcome}``).
DELIVERY_OUTCOMES = ("sent", "retry", "deferred", "dead")
#: Fine around the 250 ms event-to-finding target, so p99 can be told from 400 ms.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1, 2.5, 5, 10, 30, 60)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("secmon")
    except Exception:  # not installed as a distribution (e.g. a source checkout on the path)
        return "unknown"


class Metrics:
    """All of secmon's metrics on one registry (a fresh one per test)."""

    def precreate(self, detectors: list[str], channels: list[str]) -> None:
        """Create the labelled series secmon will use at 0, so alerts on ``rate``/``increase``
        see their first increment."""
        for name in detectors:
            self.detector_errors.labels(name)
        for channel in channels:
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(channel, outcome)

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # -- streaming core --------------------------------------------------------------
        self.events_consumed = Counter(
            "secmon_events_consumed", "Input events decoded and processed", ["topic", "event_type"], registry=r
        )
        self.dead_letters = Counter(
            "secmon_dead_letters", "Bad input records sent to the dead-letter topic", ["reason"], registry=r
        )
        for reason in BAD_RECORD_REASONS:  # visible at 0, so rate() sees the first one
            self.dead_letters.labels(reason)
        self.findings = Counter(
            "secmon_findings", "Finding records emitted (new or updated)", ["kind", "severity"], registry=r
        )
        self.detector_errors = Counter(
            "secmon_detector_errors", "Exceptions raised by a detector (isolated)", ["detector"], registry=r
        )
        self.late_events = Counter("secmon_late_events", "Events older than the watermark", registry=r)
        self.duplicate_records = Counter(
            "secmon_duplicate_records", "Re-forwarded repartition records dropped", registry=r
        )
        self.keys_expired = Counter(
            "secmon_state_keys_expired", "Idle state keys dropped", ["detector"], registry=r
        )
        self.state_keys = Gauge("secmon_state_keys", "State keys held by this worker", ["scope"], registry=r)
        self.cold_accounts = Gauge(
            "secmon_cold_accounts", "Idle accounts whose state is packed (engine.cold_after_ms)", registry=r
        )
        self.processing_latency = Histogram(
            "secmon_processing_latency_seconds",
            "From a record's broker timestamp to the commit of the poll batch that brought it",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            "secmon_batch_duration_seconds", "Time to process one poll batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.consumer_lag = Gauge(
            "secmon_consumer_lag", "Records behind the high watermark", ["topic", "partition"], registry=r
        )
        self.assigned_partitions = Gauge(
            "secmon_assigned_partitions", "Partitions assigned to this worker", ["topic"], registry=r
        )
        self.checkpoints = Counter("secmon_checkpoints", "Task checkpoints written", registry=r)
        self.checkpoint_duration = Histogram(
            "secmon_checkpoint_duration_seconds",
            "Time to write one checkpoint (state changes, offsets, the batch's effects); the loop waits",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rebalances = Counter("secmon_rebalances", "Partitions revoked from this worker (rebalances)", registry=r)
        self.offset_commit_failures = Counter(
            "secmon_offset_commit_failures", "Kafka offset commits that failed (the store checkpoint is safe)",
            registry=r,
        )
        self.build_info = Gauge("secmon_build_info", "Always 1; the version label says which build", ["version"],
                                registry=r)
        self.build_info.labels(_version()).set(1)
        self.checkpoint_age = Gauge(
            "secmon_checkpoint_age_seconds", "Seconds since the oldest task's last checkpoint", registry=r
        )
        self.last_event_timestamp = Gauge(
            "secmon_last_event_timestamp_seconds", "Wall time of the last consumed event", registry=r
        )
        self.ready = Gauge("secmon_ready", "1 once partitions are assigned and state restored", registry=r)
        self.backpressure = Gauge(
            "secmon_backpressure_paused", "1 while consumption is paused for a full outbox", registry=r
        )
        self.aligned_partitions = Gauge(
            "secmon_aligned_partitions",
            "Account partitions paused for running ahead in event time (engine.max_partition_skew_ms)",
            registry=r,
        )
        self.alignment_pauses = Counter(
            "secmon_alignment_pauses_total",
            "Account partitions paused for running ahead in event time",
            registry=r,
        )
        # -- outbox and sinks ------------------------------------------------------------
        self.outbox_depth = Gauge("secmon_outbox_depth", "Undelivered outbox rows", ["channel"], registry=r)
        self.outbox_oldest_age = Gauge(
            "secmon_outbox_oldest_age_seconds", "Age of the oldest undelivered outbox row", ["channel"], registry=r
        )
        self.deliveries = Counter(
            "secmon_sink_deliveries", "Outbox delivery attempts by outcome", ["channel", "outcome"], registry=r
        )
        self.delivery_latency = Histogram(
            "secmon_delivery_latency_seconds",
            "From outbox write to successful delivery",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # -- action layer (cases, user messages, security feed) --------------------------
        self.cases_opened = Counter(
            "secmon_cases_opened", "Support cases opened or reopened", ["category"], registry=r
        )
        self.cases_resolved = Counter(
            "secmon_cases_resolved", "Support cases resolved (by: detector or agent)", ["category", "by"], registry=r
        )
        self.sla_breaches = Counter(
            "secmon_case_sla_breaches", "Support cases found past their SLA due time", ["category", "priority"],
            registry=r,
        )
        self.notifications = Counter(
            "secmon_notifications",
            "User messages by channel and outcome (queued, held for a digest, sent, retry, failed)",
            ["channel", "outcome"],
            registry=r,
        )
        self.not_me_reports = Counter(
            "secmon_not_me_reports", "'This wasn't me' links followed, by outcome", ["outcome"], registry=r
        )
