"""`cloud-ingest serve` as shipped, against real Mosquitto and PostgreSQL, through failures.

A publisher keeps sending envelopes at QoS 1 while the server is killed with `kill -9` and
restarted, while PostgreSQL is restarted, while two servers share the load, and while a flood of
malformed messages arrives. Every envelope published is stored exactly once (its batch id, its
readings, its alarm event), and every bad message is dead-lettered and counted by its reason.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from ingest_server import (
    IngestServer,
    Publisher,
    envelope,
    envelope_doc,
    query,
    scalar,
    stored_batches,
    until,
    up_message,
    upgrade_database,
)

from core.types import ENVELOPE_LIMITS, Envelope
from simulators.services import Mosquitto, Postgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

READINGS = 2
"""Readings per envelope (each envelope also carries one alarm event of its own)."""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[IngestServer]]:
    """The servers a test starts; any still running afterwards is killed."""
    started: list[IngestServer] = []
    yield started
    for server in started:
        if server.alive():
            server.kill()


def stream(gateways: int, count: int) -> list[Envelope]:
    """`count` envelopes, round robin over `gateways` gateways."""
    return [envelope(f"gw-{n % gateways}", n, readings=READINGS) for n in range(count)]


def assert_stored_exactly_once(db_url: str, envelopes: list[Envelope]) -> None:
    """Every envelope's batch id, readings and alarm event are in the database, once each."""
    assert stored_batches(db_url) == {e.batch_id for e in envelopes}
    readings = query(db_url, "SELECT device_id, metric, ts, value FROM readings")
    expected = {
        (r.device_id, str(r.metric), r.ts, float(r.value)) for e in envelopes for r in e.readings
    }
    assert len(readings) == len(expected) == READINGS * len(envelopes)
    assert {(r[0], r[1], r[2], r[3]) for r in readings} == expected
    events = query(db_url, "SELECT fingerprint, seq FROM alarm_events")
    assert sorted((r[0], r[1]) for r in events) == sorted(
        (a.fingerprint, a.seq) for e in envelopes for a in e.alarm_events
    )


def stored_count(db_url: str) -> int:
    """How many batches are stored."""
    return int(scalar(db_url, "SELECT count(*) FROM ingested_batches"))


def test_kill_9_mid_stream_then_restart_stores_every_batch_once(
    tmp_path: Path,
    mosquitto: Mosquitto,
    postgres_url: str,
    servers: list[IngestServer],
) -> None:
    upgrade_database(postgres_url)
    envelopes = stream(gateways=4, count=1500)

    def server() -> IngestServer:
        made = IngestServer(
            tmp_path, db_url=postgres_url, mqtt_url=mosquitto.url, client_id="ingest-kill"
        )
        servers.append(made)
        return made.start()

    first = server()
    publisher = Publisher(mosquitto, [up_message(e) for e in envelopes], per_s=600)
    publisher.start()
    until(lambda: stored_count(postgres_url) >= 300, 60, "first envelopes stored")
    # Killed while it holds messages received and not yet acknowledged: the broker keeps them
    # for its client id and sends them again to the restarted process.
    until(lambda: first.metric("steward_ingest_consumer_unacked") > 0, 60, "messages in flight")
    first.kill()
    killed_at = stored_count(postgres_url)
    assert killed_at < len(envelopes)
    second = server()
    publisher.finish()
    until(lambda: stored_count(postgres_url) == len(envelopes), 60, "every envelope stored")
    assert_stored_exactly_once(postgres_url, envelopes)
    assert second.alive()
    assert second.metric("steward_ingest_envelopes_total") > 0  # the restarted one took over


def test_postgres_restart_mid_stream_the_server_rides_it_out(
    tmp_path: Path, mosquitto: Mosquitto, servers: list[IngestServer]
) -> None:
    with Postgres() as postgres:
        postgres.create_database("ingest")
        db_url = postgres.url("ingest", driver="postgresql+asyncpg")
        upgrade_database(db_url)
        server = IngestServer(
            tmp_path, db_url=db_url, mqtt_url=mosquitto.url, client_id="ingest-pg"
        )
        servers.append(server)
        server.start()
        envelopes = stream(gateways=3, count=1500)
        publisher = Publisher(mosquitto, [up_message(e) for e in envelopes], per_s=500)
        publisher.start()
        until(lambda: stored_count(db_url) >= 300, 60, "first envelopes stored")
        postgres.restart(down_s=2.0)  # the publisher keeps going meanwhile
        publisher.finish()
        until(lambda: stored_count(db_url) == len(envelopes), 90, "every envelope stored")
        assert_stored_exactly_once(db_url, envelopes)
        assert server.alive(), server.log_text()[-3000:]
        until(server.ready, 30, "ready again")  # database and broker
        metrics = server.metrics()
        assert metrics["steward_ingest_storage_failures_total"] > 0  # it did see the outage
        assert metrics["steward_ingest_consumer_handler_failures_total"] > 0
        assert metrics["steward_ingest_envelopes_total"] == len(envelopes)
        assert server.stop() == 0


def test_two_servers_in_one_share_group_store_each_envelope_once(
    tmp_path: Path,
    mosquitto: Mosquitto,
    postgres_url: str,
    servers: list[IngestServer],
) -> None:
    upgrade_database(postgres_url)
    for client_id in ("ingest-a", "ingest-b"):
        made = IngestServer(
            tmp_path, db_url=postgres_url, mqtt_url=mosquitto.url, client_id=client_id
        )
        servers.append(made)
        made.start()
    envelopes = stream(gateways=6, count=1500)
    publisher = Publisher(mosquitto, [up_message(e) for e in envelopes])
    publisher.start()
    publisher.finish()
    until(lambda: stored_count(postgres_url) == len(envelopes), 60, "every envelope stored")
    assert_stored_exactly_once(postgres_url, envelopes)
    shares = [s.metric("steward_ingest_envelopes_total") for s in servers]
    assert all(share > 0 for share in shares), shares
    assert sum(shares) == len(envelopes)


# --- the flood of malformed messages --------------------------------------------------------------


def _bad_json(n: int) -> tuple[str, bytes]:
    return f"steward/v1/gw-{n % 3}/up", b'{"schema_version": 1, "gateway_id": ' + str(n).encode()


def _wrong_version(n: int) -> tuple[str, bytes]:
    doc = envelope_doc(envelope(f"gw-{n % 3}", n))
    doc["schema_version"] = 2
    return f"steward/v1/gw-{n % 3}/up", json.dumps(doc).encode()


def _wrong_type(n: int) -> tuple[str, bytes]:
    doc = envelope_doc(envelope(f"gw-{n % 3}", n))
    doc["readings"][0]["value"] = "hot"
    return f"steward/v1/gw-{n % 3}/up", json.dumps(doc).encode()


def _unknown_metric(n: int) -> tuple[str, bytes]:
    doc = envelope_doc(envelope(f"gw-{n % 3}", n))
    doc["readings"][0]["metric"] = "flux_capacitance"
    return f"steward/v1/gw-{n % 3}/up", json.dumps(doc).encode()


def _far_future(n: int) -> tuple[str, bytes]:
    return up_message(envelope(f"gw-{n % 3}", n, shift=timedelta(days=2)))


def _forged(n: int) -> tuple[str, bytes]:
    return up_message(envelope("gw-0", n), topic_gateway="gw-1")  # gw-0's envelope on gw-1's topic


def _oversized(n: int) -> tuple[str, bytes]:
    doc = envelope_doc(envelope(f"gw-{n % 3}", n))
    doc["padding"] = "x" * ENVELOPE_LIMITS.max_bytes
    return f"steward/v1/gw-{n % 3}/up", json.dumps(doc).encode()


BAD = {
    "bad_json": (_bad_json, 2000),
    "unsupported_version": (_wrong_version, 2000),
    "schema": (_wrong_type, 1500),
    "time_out_of_bounds": (_far_future, 1500),
    "identity": (_forged, 1495),
    "too_large": (_oversized, 5),
}
"""Reason code -> (how to make such a message, how many); unknown metrics add to `schema`."""
UNKNOWN_METRICS = 1500
GOOD = 600


def test_a_flood_of_malformed_messages_is_dead_lettered_by_reason(
    tmp_path: Path,
    mosquitto: Mosquitto,
    postgres_url: str,
    servers: list[IngestServer],
) -> None:
    upgrade_database(postgres_url)
    server = IngestServer(
        tmp_path, db_url=postgres_url, mqtt_url=mosquitto.url, client_id="ingest-flood"
    )
    servers.append(server)
    server.start()
    expected = Counter({reason: count for reason, (_, count) in BAD.items()})
    expected["schema"] += UNKNOWN_METRICS
    assert expected.total() == 10_000
    messages = [make(n) for reason, (make, count) in BAD.items() for n in range(count)]
    messages += [_unknown_metric(n) for n in range(UNKNOWN_METRICS)]
    good = stream(gateways=3, count=GOOD)
    messages += [up_message(e) for e in good]
    random.Random(7).shuffle(messages)  # noqa: S311 - a test order, not cryptography
    publisher = Publisher(mosquitto, messages)
    publisher.start()
    publisher.finish(120)
    until(
        lambda: server.metric("steward_ingest_messages_total") >= len(messages),
        120,
        "every message settled",
    )
    assert_stored_exactly_once(postgres_url, good)
    rows = query(postgres_url, "SELECT reason, count(*) FROM dead_letters GROUP BY reason")
    assert {r[0]: r[1] for r in rows} == expected
    metrics = server.metrics()
    counted = {
        reason: metrics.get(f'steward_ingest_rejections_total{{reason="{reason}"}}', 0.0)
        for reason in expected
    }
    assert counted == {reason: float(count) for reason, count in expected.items()}
    assert metrics["steward_ingest_messages_total"] == len(messages)
    oversized = query(
        postgres_url, "SELECT payload_size FROM dead_letters WHERE reason = 'too_large'"
    )
    assert all(r[0] > ENVELOPE_LIMITS.max_bytes for r in oversized)
    assert server.ready()
    assert server.metric("steward_ingest_consumer_connected") == 1
    assert server.stop() == 0
