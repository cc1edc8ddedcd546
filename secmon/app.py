"""The composition root: builds the service from a :class:`Config` and does nothing else."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from kafka import KafkaProducer

from secmon.alerts import wiring
from secmon.alerts.dispatcher import Dispatcher
from secmon.alerts.jobs import JobRunner
from secmon.alerts.sinks.kafka_topic import KafkaTopicSink
from secmon.config import Config
from secmon.contract import Finding
from secmon.detectors.registry import resolve
from secmon.engine.pipeline import Pipeline
from secmon.metrics import Metrics
from secmon.runtime.commit import DLQ_CHANNEL, FINDINGS_CHANNEL, BatchCommitter, FeedEffects
from secmon.runtime.inline_feed import InlineFeed
from secmon.runtime.server import OpsServer
from secmon.runtime.worker import Worker, task_hooks
from secmon.sources.kafka import ensure_topics, make_consumer, make_group_consumer, make_producer, wait_for_broker
from secmon.store.checkpoints import CheckpointStore
from secmon.store.db import open_database
from secmon.store.outbox import Outbox

log = logging.getLogger(__name__)


@dataclass
class Service:
    """The running pieces of one worker process."""

    config: Config
    metrics: Metrics
    worker: Worker
    dispatcher: Dispatcher
    server: OpsServer | None
    jobs: JobRunner | None = None
    #: The producer of what leaves secmon (feed, dead letters, messages), apart from the
    #: worker's own (the repartition topic's records).
    output_producer: KafkaProducer | None = None

    def run(self) -> None:
        """Consume until :meth:`stop`; then checkpoint, flush and close everything."""
        self.dispatcher.start()
        if self.jobs is not None:
            self.jobs.start()
        try:
            self.worker.run()
        finally:
            if self.jobs is not None:
                self.jobs.stop()
            self.dispatcher.run_once()
            self.dispatcher.stop()
            if self.output_producer is not None:
                self.output_producer.close(timeout=10)
            self.worker.producer.close(timeout=10)
            if self.server is not None:
                self.server.stop()

    def stop(self) -> None:
        self.worker.stop()


def _delivery_due(dispatcher: Dispatcher, new: list[Finding], inline: InlineFeed) -> None:
    """New findings mean new outbox rows (each at least one, for the feed): count them towards
    the backpressure bound now, not at the next depth refresh, and wake the senders of the
    channels the worker does not send itself."""
    dispatcher.note_enqueued(len(new))
    dispatcher.wake(skip=inline.topics.keys())


def worker_id(config: Config) -> str:
    return os.environ.get("SECMON_WORKER_ID") or f"{config.app_id}@{socket.gethostname()}:{os.getpid()}"


def build_service(config: Config, *, serve: bool = True, metrics: Metrics | None = None) -> Service:
    metrics = metrics or Metrics()
    kafka = config.kafka
    topics = kafka.topics
    wait_for_broker(kafka)
    if kafka.create_topics:
        ensure_topics(kafka, [*topics.inputs(), topics.repartition])
        ensure_topics(kafka, [topics.findings, topics.dlq, topics.notifications])
    db = open_database(config.store.url.reveal())
    pipeline = Pipeline(
        resolve(config.detectors),
        allowed_lateness_ms=config.engine.allowed_lateness_ms,
        cold_after_ms=config.engine.cold_after_ms,
        cold_above_accounts=config.engine.cold_above_accounts,
        hooks=task_hooks(metrics),
    )
    producer = make_producer(kafka)
    # Two producers, two connections: each keeps one request in flight (for per-partition
    # order), and a finding should not wait behind the repartition topic's batches of logins.
    output = make_producer(kafka)

    def reader():  # type: ignore[no-untyped-def]
        return make_consumer(kafka, group=False)

    sinks = {
        FINDINGS_CHANNEL: KafkaTopicSink(FINDINGS_CHANNEL, topics.findings, output, reader),
        DLQ_CHANNEL: KafkaTopicSink(DLQ_CHANNEL, topics.dlq, output, reader),
        **wiring.build_sinks(config, output, reader, metrics),
    }
    d = config.delivery
    metrics.precreate([spec.name for spec in pipeline.specs], list(sinks))
    wid = worker_id(config)
    dispatcher = Dispatcher(
        Outbox(db, wid),
        sinks,
        metrics,
        batch_size=d.batch_size,
        max_attempts=d.max_attempts,
        base_backoff_ms=d.base_backoff_ms,
        max_backoff_ms=d.max_backoff_ms,
        lease_ms=d.lease_ms,
    )
    checkpoints = CheckpointStore(db, config.app_id)
    # The feed and the dead letters leave from the worker thread right after each commit
    # (runtime/inline_feed.py); the dispatcher retries what fails and delivers the rest.
    inline = InlineFeed(
        output,
        {FINDINGS_CHANNEL: topics.findings, DLQ_CHANNEL: topics.dlq},
        wid,
        metrics,
        busy=dispatcher.hold,
    )
    committer = BatchCommitter(
        db, checkpoints, [FeedEffects(inline), *wiring.build_effects(config, db, metrics)], inline=inline
    )
    worker = Worker(
        config,
        pipeline,
        committer,
        checkpoints,
        metrics,
        lambda: make_group_consumer(kafka, config.engine.max_event_bytes),
        producer,
        on_committed=lambda new: _delivery_due(dispatcher, new, inline),
    )
    worker.outbox_depth = lambda: dispatcher.pending_total
    worker.on_snapshots = wiring.build_snapshot_hook(config, db)
    jobs = JobRunner(
        wiring.build_jobs(config, db, metrics), interval_ms=wiring.jobs_interval_ms(config), on_work=dispatcher.wake
    )
    server = None
    if serve:
        alive_after = time.monotonic()

        def alive() -> bool:
            return worker_thread_alive(worker, alive_after)

        server = OpsServer(
            config.server.host, config.server.port, metrics.registry, alive=alive, ready=worker.ready.is_set
        ).start()
        log.info("metrics and health on http://%s:%d/metrics", config.server.host, server.port)
    return Service(config, metrics, worker, dispatcher, server, jobs, output_producer=output)


def worker_thread_alive(worker: Worker, started: float) -> bool:
    """Alive while the consume loop keeps turning (it polls at least every 100 ms)."""
    last = worker.last_loop_monotonic
    return (last or started) > time.monotonic() - 60


def run_until_signalled(service: Service) -> None:
    """Run the service; SIGTERM/SIGINT stop it cleanly (checkpoint, flush, close)."""
    import signal

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        service.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    service.run()
