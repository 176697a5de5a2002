"""Edge to cloud: the real `edge-agent run` publishes to Mosquitto, `cloud-ingest serve` stores it.

Simulated Zigbee devices (zigbee2mqtt states on the broker) feed the agent; the agent's envelopes
go to `steward/v1/<gateway>/up` on the same broker, where a plain subscriber captures them and the
ingest server consumes them into PostgreSQL. Everything the agent delivered (every batch, reading
and alarm event the subscriber saw) is stored exactly once, and an operator of the gateway's
company reads the alarm through `GET /api/v1/alarms`.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from agent_process import AgentProcess
from ingest_server import (
    IngestServer,
    Publisher,
    cloud_ingest_run,
    query,
    stored_batches,
    until,
    upgrade_database,
)
from uplink_capture import Capture, caught_up

from core.types import Envelope
from simulators.services import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

GATEWAY = "gw-e2c"
COMPANY = "acme"
METERS = 10
STATES = 600
SMOKE = "smoke-hall"

RULES = """\
rules:
  - id: smoke
    match: {metric: smoke, kinds: [smoke]}
    equals: true
    severity: critical
    resend: 3600s
"""


def config_text(tmp: Path, broker: Mosquitto) -> str:
    meters = "\n".join(
        f"  - {{id: meter-{n}, codec: zigbee2mqtt.generic.exposes, kind: meter, "
        f"friendly_name: m/{n}}}"
        for n in range(METERS)
    )
    return f"""\
gateway: {{id: {GATEWAY}, site: d1/s1, site_id: s1}}
state_dir: {tmp / "state"}
sources:
  mqtt: {{host: 127.0.0.1, port: {broker.port}, zigbee2mqtt: {{base_topic: zigbee2mqtt}}}}
devices:
{meters}
  - {{id: {SMOKE}, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: hall/smoke}}
rules: [rules.yaml]
uplink: {{host: 127.0.0.1, port: {broker.port}, batch_wait_s: 0.05}}
"""


def illuminance(capture: Capture) -> set[float]:
    """The meters' illuminance values captured so far."""
    return {
        float(r.value)
        for e in capture.snapshot()
        for r in e.readings
        if str(r.metric) == "illuminance_lux"
    }


@pytest.fixture
def capture(mosquitto: Mosquitto) -> Iterator[Capture]:
    """A subscriber capturing the agent's envelopes from the start."""
    made = Capture(mosquitto)
    yield made
    made.close()


def zigbee_states(count: int) -> list[tuple[str, bytes]]:
    """zigbee2mqtt states of the meters: `illuminance` is the message number."""
    return [
        (f"zigbee2mqtt/m/{n % METERS}", json.dumps({"illuminance": n}).encode())
        for n in range(count)
    ]


def operator_token(tmp_path: Path, db_url: str) -> str:
    """Register the gateway to the company and add an operator of it; the operator's token."""
    cloud_ingest_run(["gateways", "add", GATEWAY, "--company", COMPANY, "--db", db_url], tmp_path)
    out = cloud_ingest_run(
        ["users", "add", "ops", "--role", "operator", "--company", COMPANY, "--db", db_url],
        tmp_path,
    )
    return next(
        line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("api token:")
    )


def wait_for_agent(broker: Mosquitto, capture: Capture, agent: AgentProcess) -> None:
    """Probe until a reading comes through: the agent's subscription exists from then on."""
    probe = [("zigbee2mqtt/m/0", json.dumps({"illuminance": -1}).encode())]

    def probed() -> bool:
        Publisher(broker, probe).run()
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline and -1.0 not in illuminance(capture):
            time.sleep(0.05)
        return -1.0 in illuminance(capture) or not agent.alive()

    until(probed, 60, "the agent delivers a first reading")
    assert agent.alive(), agent.log.read_text()[-3000:]


def assert_stored_once(db_url: str, delivered: list[Envelope]) -> None:
    """Every reading and alarm event of `delivered` is in the database, once each."""
    assert stored_batches(db_url) == {e.batch_id for e in delivered}
    readings = query(db_url, "SELECT device_id, metric, ts, value FROM readings")
    expected = {
        (r.device_id, str(r.metric), r.ts, float(r.value)) for e in delivered for r in e.readings
    }
    assert len(readings) == sum(len(e.readings) for e in delivered) == len(expected)
    assert {(r[0], r[1], r[2], r[3]) for r in readings} == expected
    # The cloud raises alarms of its own (a gateway's offline alarm from its status): only the
    # events of the agent's batches are compared.
    ids = [e.batch_id for e in delivered]
    sql = "SELECT fingerprint, seq FROM alarm_events WHERE batch_id = ANY($1::uuid[])"
    events = [(r[0], r[1]) for r in query(db_url, sql, ids)]
    assert len(events) == len(set(events))
    assert set(events) == {(a.fingerprint, a.seq) for e in delivered for a in e.alarm_events}


def test_every_reading_and_alarm_the_agent_delivered_is_stored_once(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str, capture: Capture
) -> None:
    upgrade_database(postgres_url)
    token = operator_token(tmp_path, postgres_url)
    server = IngestServer(
        tmp_path, db_url=postgres_url, mqtt_url=mosquitto.url, client_id="ingest-e2c"
    )
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "edge.yaml"
    config.write_text(config_text(tmp_path, mosquitto))
    agent = AgentProcess(config, tmp_path / "agent.log", tmp_path / "no-notify.sock")
    server.start()
    agent.start()
    try:
        wait_for_agent(mosquitto, capture, agent)
        states = Publisher(mosquitto, zigbee_states(STATES))
        states.start()
        states.finish()
        Publisher(mosquitto, [("zigbee2mqtt/hall/smoke", b'{"smoke": true}')]).run()
        wanted = {float(n) for n in range(STATES)}
        until(lambda: wanted <= illuminance(capture), 60, "every state delivered by the agent")
        until(
            lambda: any(e.alarm_events for e in capture.snapshot()), 60, "the smoke alarm delivered"
        )
        agent.kill(signal.SIGTERM)
        assert agent.proc is not None
        assert agent.proc.wait(30) == 0  # it publishes nothing more
        until(lambda: caught_up(postgres_url, capture), 60, "every delivered batch stored")
        delivered = capture.snapshot()
        answer = httpx.get(
            f"{server.url}/api/v1/alarms", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert server.alive()
        assert server.stop() == 0
    finally:
        if agent.alive():
            agent.kill(signal.SIGKILL)
        if server.alive():
            server.kill()
    assert_stored_once(postgres_url, delivered)
    fingerprints = {a.fingerprint for e in delivered for a in e.alarm_events}
    assert fingerprints
    assert answer.status_code == 200, answer.text
    listed = {item["fingerprint"]: item for item in answer.json()["items"]}
    assert fingerprints <= set(listed)
    assert all(listed[f]["state"] == "firing" for f in fingerprints)
    assert all(listed[f]["severity"] == "critical" for f in fingerprints)
