"""The one-command demo: broker, service, console/API and simulated traffic together."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secmon.config import load_config
from secmon.logs import setup_logging
from secmon.net import free_port, port_free
from secmon.runtime.broker import EmbeddedBroker

log = logging.getLogger(__name__)


@dataclass
class DemoOptions:
    config: str | None
    dir: str
    port: int
    seed: int
    accounts: int
    days: int
    rate: float
    speed: float
    fresh: bool


class _Stopped(Exception):
    pass


class _StoppableProducer:
    """Wraps a KafkaProducer so the traffic thread ends promptly on Ctrl-C."""

    def __init__(self, producer: Any, stop: threading.Event) -> None:
        self.producer, self.stop = producer, stop

    def send(self, topic: str, value: bytes, key: bytes) -> Any:
        if self.stop.is_set():
            raise _Stopped
        return self.producer.send(topic, value=value, key=key)

    def flush(self, timeout: float | None = None) -> None:
        self.producer.flush(timeout)


class Demo:
    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        self.stop = threading.Event()

    def run(self) -> int:
        opts = self.opts
        state = Path(opts.dir)
        state.mkdir(parents=True, exist_ok=True)
        db = state / "secmon.db"
        if opts.fresh:
            for f in state.glob("secmon.db*"):
                f.unlink()
        port = opts.port if port_free(opts.port) else free_port()
        broker = EmbeddedBroker(port=port, log_path=state / "broker.log").start()
        # Tansu keeps topics in memory: a new broker means new topics, so old checkpoints
        # (offsets into the previous broker's topics) must not be reused.
        for f in state.glob("secmon.db*"):
            f.unlink()
        metrics_port = 9464 if port_free(9464) else free_port()
        config = load_config(opts.config, {
            "kafka": {"bootstrap_servers": broker.bootstrap, "session_timeout_ms": 6000,
                      "heartbeat_interval_ms": 2000},
            "store": {"url": f"sqlite:///{db}"},
            "server": {"port": metrics_port},
            "logging": {"format": "text"},
        })
        setup_logging(config.logging.level, "text")
        from secmon.app import build_service

        service = build_service(config)
        worker = threading.Thread(target=service.run, name="secmon-service")
        worker.start()
        api = self._start_api(config)
        traffic = threading.Thread(target=self._play, args=(config,), name="secmon-traffic", daemon=True)
        traffic.start()
        lines = [
            "",
            "secmon demo is running",
            f"  broker (Kafka protocol): {broker.bootstrap}",
            f"  metrics:  http://127.0.0.1:{metrics_port}/metrics   health: /healthz /readyz",
        ]
        if api is not None:
            lines.append(f"  console:  {api['url']}   (log in with token: {api['token']})")
        lines += [f"  store:    {db}", f"  traffic:  {opts.accounts} simulated accounts, {opts.rate:g} events/s",
                  "  Ctrl-C to stop", ""]
        print("\n".join(lines), file=sys.stderr, flush=True)

        def handler(signum: int, _frame: object) -> None:
            self.stop.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        try:
            while not self.stop.is_set() and worker.is_alive():
                self.stop.wait(0.5)
        finally:
            print("stopping …", file=sys.stderr, flush=True)
            self.stop.set()
            traffic.join(10)
            service.stop()
            worker.join(60)
            if api is not None:
                api["stop"]()
            broker.stop()
        return 0

    def _start_api(self, config: Any) -> dict[str, Any] | None:
        try:
            from secmon.api.serve import start_demo_api  # the console (optional part)
        except ImportError:
            return None
        return start_demo_api(config)

    def _play(self, config: Any) -> None:
        from secmon.sim.generate import simulate
        from secmon.sim.play import play
        from secmon.sources.kafka import make_producer

        opts = self.opts
        try:
            result = simulate(opts.seed, accounts=opts.accounts, days=opts.days)
            events = result.events
            producer = _StoppableProducer(make_producer(config.kafka, linger_ms=20), self.stop)
            shift = int(time.time() * 1000) - events[0][0]
            sent = play(events, producer, config.kafka.topics, shift_ms=shift, rate=opts.rate, speed=opts.speed)
            log.info("traffic: all %d simulated events played", sent)
        except _Stopped:
            pass
        except Exception:
            log.exception("traffic generator failed")
