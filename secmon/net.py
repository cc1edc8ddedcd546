"""Loopback port helpers for the demo, the embedded broker and the tests."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound now (a default port may be taken)."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(n: int, host: str = "127.0.0.1") -> int:
    """The first of ``n`` consecutive ports free now (``secmon run --workers N`` serves
    worker ``i`` on ``server.port + i``)."""
    for _ in range(100):
        first = free_port(host)
        if all(port_free(first + i, host) for i in range(1, n)):
            return first
    raise RuntimeError(f"no {n} consecutive free ports on {host}")
