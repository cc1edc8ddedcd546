"""secmon's benchmark suite: one run, one JSON file of figures.  Never run by the tests.

    python -m bench.run [--events FILE] [--accounts N] [--out bench/results.json] [--quick]
                            [--only engine,e2e,latency,memory]

On the embedded broker (Tansu) it measures, in one run:
  1. the raw ceiling: kafka-python consume + JSON decode of the same events, one consumer;
  2. secmon end to end (consume → decode → merge → detect → commit → feed), all detectors on,
     and with every detector off (the core pipeline alone), the worker's consumer in its
     fetch process (the default), each round right after its own ceiling (three rounds,
     medians: see ``e2e``), and the core alone once more in one process; all detectors
     also as ``secmon run --workers N`` (a worker per core, SQLite store; ``--workers``);
  3. the engine alone from a file (``secmon replay``'s path), all detectors on and off;
  4. p50/p99 event-to-finding latency at a fixed offered rate (10k events/s by default), per
     5 s of the run too, beside the broker's floor: one bare hop at the same rate on a fresh
     broker (``broker_floor``); for the platform producer's linger of 5 ms (librdkafka's
     default), then again for 20 ms (``--producer-linger-ms``);
  5. resident memory per active account (100k and 1M accounts) with every detector on;
  6. scale-out on this machine: one and two ``secmon run`` processes in one consumer group,
     all detectors, PostgreSQL store (``bench/scale.py``; ``--pg``).
Figures go to stdout and to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from bench.common import OWN_TOPICS, EventSet, create_topics, max_rss_mib, new_prefix, produce, python_loop_us
from bench.scale import DEFAULT_PG, supervised_end_to_end, workers_end_to_end
from secmon.config import KafkaConfig, load_config
from secmon.contract import iso_ms, parse_ts_ms
from secmon.detectors.registry import REGISTRY, resolve
from secmon.engine.pipeline import Pipeline
from secmon.metrics import Metrics
from secmon.runtime.broker import EmbeddedBroker
from secmon.runtime.replay import replay

ALL_OFF = {name: {"enabled": False} for name in REGISTRY}
#: How long the latency run's platform producer batches before it sends (librdkafka's
#: default, and the Java client's since Kafka 4.0).  It matters more on the embedded broker
#: than on Kafka: Tansu's memory engine lists every batch a partition holds on each fetch, so
#: its CPU per fetch grows with the number of batches produced so far (``--producer-linger-ms``).
PLATFORM_LINGER_MS = 5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- 1. raw ceiling ----------------------------------------------------------------------
def raw_ceiling(bootstrap: str, names: dict[str, str], n: int, group: str = "") -> float:
    """kafka-python poll + orjson decode of every value, one group member, all partitions."""
    consumer = KafkaConsumer(
        names["auth.events"], names["wallet.events"], names["account.snapshots"],
        bootstrap_servers=bootstrap, group_id=f"raw-{names['auth.events']}{group}", enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_records=5000, fetch_max_wait_ms=100,
        max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
        session_timeout_ms=6000, heartbeat_interval_ms=2000,
    )  # fmt: skip
    seen = 0
    started = None
    loads = orjson.loads
    while seen < n:
        batch = consumer.poll(timeout_ms=500)
        if batch and started is None:
            started = time.perf_counter()
        for records in batch.values():
            for rec in records:
                loads(rec.value)
            seen += len(records)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return n / elapsed


# -- 2. secmon end to end ----------------------------------------------------------------
def _consumed(metrics: Metrics) -> float:
    total = 0.0
    for metric in (metrics.events_consumed, metrics.dead_letters):
        for family in metric.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    total += sample.value
    return total


def service_config(bootstrap: str, prefix: str, tmp: Path, detectors: dict[str, Any], app: str | None = None,
                   fetch_process: bool = True) -> Any:
    """A worker's config over the input topics under ``prefix``; its own topics (repartition,
    outputs) are under ``app`` (see :data:`OWN_TOPICS`: the caller creates them)."""
    own = app or prefix
    names = {
        "auth": f"{prefix}.auth.events", "wallet": f"{prefix}.wallet.events",
        "snapshots": f"{prefix}.account.snapshots", "findings": f"{own}.secmon.findings",
        "dlq": f"{own}.secmon.dlq", "repartition": f"{own}.secmon.repartition",
        "notifications": f"{own}.secmon.notifications",
    }  # fmt: skip
    return load_config(
        None,
        {
            "app_id": app or prefix,
            "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{app or prefix}-g", "topics": names,
                      "session_timeout_ms": 6000, "heartbeat_interval_ms": 2000, "create_topics": False,
                      "fetch_process": fetch_process},
            "store": {"url": f"sqlite:///{tmp / ((app or prefix) + '.db')}"},
            "detectors": detectors,
            "logging": {"level": "WARNING"},
        },
    )


def secmon_end_to_end(bootstrap: str, prefix: str, app: str, n: int, tmp: Path,
                      detectors: dict[str, Any], fetch_process: bool = True) -> dict[str, float]:
    """One worker (in this process, its consumer in a fetch process unless ``fetch_process`` is
    off) over the pre-produced topics; timed from first to last event."""
    from secmon.app import build_service

    metrics = Metrics()
    create_topics(bootstrap, app, only=OWN_TOPICS)  # a repartition topic of this run alone
    config = service_config(bootstrap, prefix, tmp, detectors, app, fetch_process)
    service = build_service(config, serve=False, metrics=metrics)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    started = None
    while True:
        done = _consumed(metrics)
        if done and started is None:
            started = time.perf_counter()
        if done >= n:
            break
        if not thread.is_alive():
            raise RuntimeError("the worker stopped before consuming every event")
        time.sleep(0.005)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    service.stop()
    thread.join(60)
    findings = sum(s.value for f in metrics.findings.collect() for s in f.samples if s.name.endswith("_total"))
    return {"events_per_s": n / elapsed, "seconds": elapsed, "findings": findings}


# -- 3. engine only ------------------------------------------------------------------------
def engine_only(path: Path, detectors: dict[str, Any]) -> dict[str, float]:
    pipeline = Pipeline(resolve(detectors))
    result = replay([path], pipeline, progress=False)
    return {"events_per_s": result.events_per_second, "seconds": result.seconds, "events": result.events,
            "findings": len(result.findings)}


# -- 4. latency at a fixed offered rate ------------------------------------------------------
def _produce_at_rate(bootstrap: str, names: dict[str, str], events: EventSet, total: int, rate: int,
                     out: Path, linger_ms: int) -> None:
    """The platform's producer, in its own process (as it is live): a producer loop sharing
    secmon's interpreter would take the GIL from it and measure contention, not secmon.
    It uses librdkafka (``confluent-kafka``, the ``bench`` extra) when installed: on a 2-core
    machine a pure-Python producer at 10k events/s takes most of a core from the service.
    Event time runs with the wall clock, as it does live: each event is re-stamped with the
    time it is sent.  Writes ``{event_id: sent_at}`` and the offered rate to ``out``."""
    templates = []  # (before the timestamp, after it, event id), split once up front
    for i in range(total):
        doc = orjson.loads(events.lines[i])
        doc["occurred_at"] = "\0"
        before, after = orjson.dumps(doc).split(b"\\u0000", 1)
        templates.append((before, after, doc["event_id"]))
    send, flush = _fast_producer(bootstrap, linger_ms)
    sent_at: dict[str, float] = {}
    start = time.perf_counter()
    for i, (before, after, event_id) in enumerate(templates):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = time.time()
        sent_at[event_id] = now
        send(names[events.topics[i]], events.keys[i], before + iso_ms(int(now * 1000)).encode() + after)
    flush()
    offered = total / (time.perf_counter() - start)
    out.write_bytes(orjson.dumps({"offered": offered, "sent_at": sent_at}))


def _offer_in_child(bootstrap: str, names: dict[str, str], events: EventSet, total: int, rate: int,
                    out: Path, linger_ms: int) -> dict[str, Any]:
    """Run :func:`_produce_at_rate` in a forked process, wait for it, and return what it
    wrote (``offered``, ``sent_at``)."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(
        target=_produce_at_rate, args=(bootstrap, names, events, total, rate, out, linger_ms))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the producer process failed (exit {child.exitcode})")
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    return result


def _fast_producer(bootstrap: str, linger_ms: int) -> tuple[Callable[[str, bytes, bytes], None], Callable[[], None]]:
    try:
        from confluent_kafka import Producer
    except ImportError:
        from kafka import KafkaProducer

        kp = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks=1)
        return (lambda topic, key, value: kp.send(topic, key=key, value=value)), kp.flush
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms, "acks": 1,
                         "partitioner": "murmur2_random"})  # kafka-python's (and Java's) partitioner

    def send(topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)

    def flush() -> None:
        producer.flush(30)

    return send, flush


def _histogram_quantiles(histogram: Any, **labels: str) -> dict[str, float | None]:
    """p50/p99 in ms from a Prometheus histogram's buckets (upper bounds, as PromQL's
    ``histogram_quantile`` without interpolation)."""
    buckets: list[tuple[float, float]] = []
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket") and all(sample.labels.get(k) == v for k, v in labels.items()):
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0

    def q(p: float) -> float | None:
        if not total:
            return None
        return next((round(le * 1000, 1) for le, count in buckets if count >= p * total), None)

    return {"p50_ms": q(0.5), "p99_ms": q(0.99), "count": total}


def latency_at_rate(bootstrap: str, events: EventSet, tmp: Path, rate: int, seconds: float,
                    linger_ms: int = PLATFORM_LINGER_MS) -> dict[str, Any]:
    """Event-to-finding latency: from the moment the triggering event is sent to the moment
    its finding can be read from ``secmon.findings``, with every detector on; the platform's
    producer batches for ``linger_ms``."""
    from secmon.app import build_service

    prefix = new_prefix()
    names = create_topics(bootstrap, prefix)
    metrics = Metrics()
    service = build_service(service_config(bootstrap, prefix, tmp, {}), serve=False, metrics=metrics)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    service.worker.ready.wait(60)
    total = min(len(events), int(rate * seconds))
    receipts: list[tuple[float, dict[str, Any]]] = []
    stop = threading.Event()

    def read_findings() -> None:
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                          fetch_max_wait_ms=20)
        tps = [TopicPartition(names["secmon.findings"], p) for p in range(4)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        while not stop.is_set():
            for recs in c.poll(timeout_ms=20).values():
                now = time.time()
                receipts.extend((now, orjson.loads(r.value)) for r in recs)
        c.close()

    reader = threading.Thread(target=read_findings, daemon=True)
    reader.start()
    sent = _offer_in_child(bootstrap, names, events, total, rate, tmp / f"{prefix}.sent.json", linger_ms)
    sent_at: dict[str, float] = sent["sent_at"]
    time.sleep(5)
    stop.set()
    reader.join(10)
    service.stop()
    thread.join(60)
    lat: list[float] = []
    timed: list[tuple[float, float]] = []  # (trigger sent at, latency ms)
    by_kind: dict[str, list[float]] = {}
    timer_driven = 0
    for received, f in receipts:
        ev_ids = [e for e in f["evidence"] if e in sent_at]
        if not ev_ids:
            continue
        trigger = max(ev_ids, key=lambda e: sent_at[e])
        if parse_ts_ms(f["detected_at"]) != int(sent_at[trigger] * 1000):
            timer_driven += 1  # fired by a timer (e.g. an SLA), not by an event: no event latency
            continue
        ms = (received - sent_at[trigger]) * 1000
        lat.append(ms)
        timed.append((sent_at[trigger], ms))
        by_kind.setdefault(f["kind"], []).append(ms)

    def q(values: list[float], p: float) -> float | None:
        return _nearest_rank(sorted(values), p) if values else None

    service_side = {
        "record_to_commit": _histogram_quantiles(metrics.processing_latency),
        "poll_batch": _histogram_quantiles(metrics.batch_duration),
        "outbox_to_feed": _histogram_quantiles(metrics.delivery_latency, channel="findings"),
        "checkpoint": _histogram_quantiles(metrics.checkpoint_duration),
    }
    return {"offered_events_per_s": round(sent["offered"]), "events": total, "findings_measured": len(lat),
            "service_side_ms": service_side,
            "timer_driven_findings": timer_driven, "p50_ms": q(lat, 0.50), "p99_ms": q(lat, 0.99),
            "max_ms": round(max(lat), 1) if lat else None,
            "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
            "by_kind": {k: {"n": len(v), "p50_ms": q(v, 0.5), "p99_ms": q(v, 0.99)} for k, v in sorted(by_kind.items())},
            "by_window": _by_window(timed, min(sent_at.values())) if timed else []}


def _nearest_rank(ordered: list[float], p: float) -> float:
    """The ``p`` quantile of sorted values (nearest rank), rounded to 0.1."""
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)


def _by_window(samples: list[tuple[float, float]], start: float, width_s: float = 5.0) -> list[dict[str, Any]]:
    """``(sent_at, latency_ms)`` samples → p50/p99/max per ``width_s`` of send time: whether
    the latency stays level over the run or grows with it."""
    windows: dict[int, list[float]] = {}
    for sent, ms in samples:
        windows.setdefault(int((sent - start) // width_s), []).append(ms)
    out = []
    for w, values in sorted(windows.items()):
        values.sort()
        out.append({"from_s": w * width_s, "n": len(values), "p50_ms": _nearest_rank(values, 0.5),
                    "p99_ms": _nearest_rank(values, 0.99), "max_ms": round(values[-1], 1)})
    return out


def broker_floor(events: EventSet, tmp: Path, rate: int, seconds: float,
                 linger_ms: int = PLATFORM_LINGER_MS) -> dict[str, Any]:
    """One broker hop, nothing else: the latency producer's events at the same rate on a
    fresh broker, read by a bare kafka-python consumer of the input topics (secmon's fetch
    settings), from send to receipt (the record's create time, which the producer stamps as
    it sends).  A finding takes at least two such hops (input, feed): this is the part of the
    latency that no work in secmon can take away."""
    with EmbeddedBroker() as broker:
        prefix = new_prefix()
        names = create_topics(broker.bootstrap, prefix)
        inputs = [names[t] for t in ("auth.events", "wallet.events", "account.snapshots")]
        total = min(len(events), int(rate * seconds))
        received: list[tuple[float, float]] = []
        stop = threading.Event()
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                                 fetch_max_wait_ms=KafkaConfig().fetch_max_wait_ms)
        tps = [TopicPartition(t, p) for t in inputs for p in range(4)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)

        def read() -> None:
            while not stop.is_set():
                for recs in consumer.poll(timeout_ms=20).values():
                    now = time.time()
                    received.extend((r.timestamp / 1000, (now - r.timestamp / 1000) * 1000) for r in recs)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        _offer_in_child(broker.bootstrap, names, events, total, rate, tmp / f"{prefix}.sent.json", linger_ms)
        time.sleep(2)
        stop.set()
        reader.join(10)
        consumer.close()
    ms = sorted(lat for _, lat in received)
    start = min(sent for sent, _ in received)
    return {"events": total, "received": len(ms), "p50_ms": _nearest_rank(ms, 0.5),
            "p99_ms": _nearest_rank(ms, 0.99), "max_ms": round(ms[-1], 1),
            "by_window": _by_window(received, start)}


# -- 5. memory per account ---------------------------------------------------------------
def memory_per_account(accounts: int) -> dict[str, float]:
    """In a fresh process: RSS growth while every detector holds state for N accounts."""
    out = subprocess.run([sys.executable, "-m", "bench.memory", str(accounts)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=Path, help="JSON Lines events (default: simulate)")
    ap.add_argument("--accounts", type=int, default=5000, help="simulated accounts (without --events)")
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("--rate", type=int, default=10_000, help="offered rate for the latency run")
    ap.add_argument("--latency-seconds", type=float, default=30)
    ap.add_argument("--producer-linger-ms", default=f"{PLATFORM_LINGER_MS},20",
                    help="the latency run's platform producer linger; each further value runs the "
                         "latency part again with it (default: %(default)s)")
    ap.add_argument("--memory", default="100000,1000000", help="account counts for the memory runs ('' to skip)")
    ap.add_argument("--quick", action="store_true", help="1,000 accounts × 1 day, 5 s of latency, 20k accounts of memory (smoke)")
    ap.add_argument("--only", default="engine,e2e,latency,memory,scale",
                    help="comma-separated parts to run (engine, e2e, latency, memory, scale)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="worker processes of the per-core end-to-end run (default: one per core)")
    ap.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL admin URL for the scale-out part")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    if args.quick:
        args.accounts, args.days, args.latency_seconds, args.memory = 1000, 1, 5.0, "20000"
    tmp = Path(tempfile.mkdtemp(prefix="secmon-bench-"))
    if args.events is None:
        from secmon.sim.generate import simulate, write

        log(f"simulating {args.accounts} accounts × {args.days} days …")
        events_path, _ = write(simulate(4242, accounts=args.accounts, days=args.days), tmp / "sim")
        args.events = events_path
    events = EventSet.load(args.events)
    n = len(events)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "python_loop_us": {"start": python_loop_us()}},
        "events": n,
        "detectors": sorted(REGISTRY),
    }
    log(f"{n} events from {args.events}")
    if "engine" in parts:
        results["engine_only_all_detectors"] = engine_only(args.events, {})
        results["engine_only_no_detectors"] = engine_only(args.events, ALL_OFF)
        eo = results["engine_only_all_detectors"]
        log(f"engine only: {eo['events_per_s']:,.0f} ev/s all detectors; "
            f"{results['engine_only_no_detectors']['events_per_s']:,.0f} ev/s none")
    if "latency" in parts:
        lingers = [int(ms) for ms in args.producer_linger_ms.split(",")]
        latency(events, tmp, args.rate, args.latency_seconds, lingers, results)
    with EmbeddedBroker() as broker:
        if "e2e" in parts:
            e2e(broker.bootstrap, events, tmp, results, workers=args.workers)
        if "scale" in parts:
            scale(broker.bootstrap, events, tmp, args.pg, results)
    if "memory" in parts:
        memory(args.memory, results)
    results["machine"]["python_loop_us"]["end"] = python_loop_us()
    results["bench_max_rss_mib"] = round(max_rss_mib(), 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))


def latency(events: EventSet, tmp: Path, rate: int, seconds: float, lingers: list[int],
            results: dict[str, Any]) -> None:
    """Part 4 for each platform producer linger in ``lingers``: the broker's floor and
    secmon's latency, each on a fresh broker.  The first linger's figures are ``latency`` and
    ``latency_broker_floor``; the others go under ``latency_other_lingers``, in brief."""
    for i, linger_ms in enumerate(lingers):
        floor = broker_floor(events, tmp, rate, seconds, linger_ms)
        log(f"broker floor (one hop, no secmon) at {rate:,} ev/s offered, linger {linger_ms} ms: {floor}")
        with EmbeddedBroker() as broker:
            secmon = latency_at_rate(broker.bootstrap, events, tmp, rate, seconds, linger_ms)
        log(f"latency at {rate:,} ev/s offered, linger {linger_ms} ms: {secmon}")
        if i == 0:
            results["latency_producer_linger_ms"] = linger_ms
            results["latency_broker_floor"], results["latency"] = floor, secmon
            continue
        brief = {k: secmon[k] for k in ("findings_measured", "p50_ms", "p99_ms", "max_ms", "by_window")}
        results.setdefault("latency_other_lingers", {})[str(linger_ms)] = {"broker_floor": floor, "secmon": brief}


def e2e(bootstrap: str, events: EventSet, tmp: Path, results: dict[str, Any], rounds: int = 3,
        workers: int = 2) -> None:
    """The raw consume+decode ceiling and secmon end to end, on the same pre-produced topics.

    This machine's speed drifts by a third within minutes (a shared VM), so one ceiling
    measured a minute before secmon says little about the share secmon reaches.  Each round
    measures the ceiling, the core pipeline and all detectors (one worker in this process,
    then ``secmon run --workers N``, a worker per core) back to back; a share is the
    median over the rounds of each run against its own round's ceiling, and the events/s
    figures are the medians too (every round is kept under ``e2e_rounds``)."""
    n = len(events)
    prefix = new_prefix()
    names = create_topics(bootstrap, prefix)
    results["produce_events_per_s"] = produce(bootstrap, names, events)
    per_round: list[dict[str, Any]] = []
    for i in range(rounds):
        ceiling = raw_ceiling(bootstrap, names, n, group=f"-{i}")
        core = secmon_end_to_end(bootstrap, prefix, f"{prefix}c{i}", n, tmp, ALL_OFF)
        every = secmon_end_to_end(bootstrap, prefix, f"{prefix}a{i}", n, tmp, {})
        per_core = supervised_end_to_end(bootstrap, _own_topics(bootstrap, names), n, tmp, workers)
        per_round.append({
            "raw_ceiling_events_per_s": round(ceiling), "core_events_per_s": round(core["events_per_s"]),
            "all_events_per_s": round(every["events_per_s"]), "all_findings": every["findings"],
            "core_share": round(core["events_per_s"] / ceiling, 3), "all_share": round(every["events_per_s"] / ceiling, 3),
            "workers_events_per_s": round(per_core["events_per_s"]),
            "workers_share": round(per_core["events_per_s"] / ceiling, 3),
        })  # fmt: skip
        log(f"round {i + 1}/{rounds}: ceiling {ceiling:,.0f} ev/s; core {core['events_per_s']:,.0f} "
            f"({per_round[-1]['core_share']:.0%}); all detectors {every['events_per_s']:,.0f} "
            f"({per_round[-1]['all_share']:.0%}); all detectors, --workers {workers}: "
            f"{per_core['events_per_s']:,.0f} ({per_round[-1]['workers_share']:.0%})")
    results["e2e_rounds"] = per_round

    def median(key: str) -> float:
        return statistics.median(r[key] for r in per_round)

    ceiling = median("raw_ceiling_events_per_s")
    results["raw_ceiling_events_per_s"] = ceiling
    results["e2e_no_detectors"] = {"events_per_s": median("core_events_per_s"), "share_of_ceiling": median("core_share")}
    results["e2e_all_detectors"] = {"events_per_s": median("all_events_per_s"), "share_of_ceiling": median("all_share"),
                                    "findings": median("all_findings")}  # fmt: skip
    results["e2e_all_detectors_workers"] = {"workers": workers, "store": "sqlite",
                                            "events_per_s": median("workers_events_per_s"),
                                            "share_of_ceiling": median("workers_share")}  # fmt: skip
    # The core once more with the consumer in the worker's own process (kafka.fetch_process off).
    one = secmon_end_to_end(bootstrap, prefix, prefix + "o", n, tmp, ALL_OFF, fetch_process=False)
    results["e2e_no_detectors_one_process"] = {**one, "share_of_ceiling": round(one["events_per_s"] / ceiling, 3)}
    log(f"secmon end to end, core only, one process: {one['events_per_s']:,.0f} ev/s")
    results["e2e_core_share_of_ceiling"] = results["e2e_no_detectors"]["share_of_ceiling"]
    results["e2e_all_share_of_ceiling"] = results["e2e_all_detectors"]["share_of_ceiling"]
    results["e2e_all_workers_share_of_ceiling"] = results["e2e_all_detectors_workers"]["share_of_ceiling"]


def _own_topics(bootstrap: str, names: dict[str, str]) -> dict[str, str]:
    """The config topics of a run over the pre-produced inputs ``names``, with internal and
    output topics of its own."""
    own = create_topics(bootstrap, new_prefix(), only=OWN_TOPICS)
    return {
        "auth": names["auth.events"], "wallet": names["wallet.events"], "snapshots": names["account.snapshots"],
        "findings": own["secmon.findings"], "dlq": own["secmon.dlq"], "repartition": own["secmon.repartition"],
        "notifications": own["secmon.notifications"],
    }  # fmt: skip


def scale(bootstrap: str, events: EventSet, tmp: Path, pg: str, results: dict[str, Any]) -> None:
    """One worker, then two in one group, as separate processes (PostgreSQL store)."""
    n = len(events)
    prefix = new_prefix()
    names = create_topics(bootstrap, prefix)
    produce(bootstrap, names, events)
    if "raw_ceiling_events_per_s" not in results:
        results["raw_ceiling_events_per_s"] = raw_ceiling(bootstrap, names, n)
    ceiling = results["raw_ceiling_events_per_s"]
    for workers in (1, 2):
        key = f"scale_{workers}_workers_all_detectors"
        results[key] = workers_end_to_end(bootstrap, _own_topics(bootstrap, names), n, tmp, workers, pg)
        results[key]["share_of_ceiling"] = round(results[key]["events_per_s"] / ceiling, 3)
        log(f"{workers} worker process(es) in one group, all detectors, PostgreSQL: "
            f"{results[key]['events_per_s']:,.0f} ev/s")


def memory(counts: str, results: dict[str, Any]) -> None:
    for count in [int(x) for x in counts.split(",") if x]:
        results[f"memory_{count}_accounts"] = memory_per_account(count)
        log(f"memory with {count:,} accounts: {results[f'memory_{count}_accounts']}")


if __name__ == "__main__":
    main()
