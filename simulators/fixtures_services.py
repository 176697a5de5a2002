"""pytest fixtures that start real services on free loopback ports and stop them afterwards."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import pytest

from simulators.services import Mosquitto, Postgres, VictoriaMetrics

MosquittoFactory = Callable[..., Mosquitto]
"""`factory(extra_config=(), port=None) -> Mosquitto` (started)."""


@pytest.fixture
def mosquitto_factory() -> Iterator[MosquittoFactory]:
    """Start any number of brokers (with extra config lines); all are stopped after the test."""
    brokers: list[Mosquitto] = []

    def make(extra_config: Sequence[str] = (), port: int | None = None) -> Mosquitto:
        broker = Mosquitto(extra_config, port=port).start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    """A fresh Mosquitto broker for one test (starts in about 10 ms)."""
    return mosquitto_factory()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One throwaway PostgreSQL cluster for the whole session."""
    with Postgres() as server:
        yield server


_db_names = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> str:
    """A SQLAlchemy URL (`postgresql+asyncpg://`) of a fresh, empty database for one test."""
    name = f"test_{next(_db_names)}"
    postgres_server.create_database(name)
    return postgres_server.url(name, driver="postgresql+asyncpg")


@pytest.fixture(scope="session")
def victoria_metrics() -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics server accepting InfluxDB v2 writes, for the whole session."""
    with VictoriaMetrics() as server:
        yield server
