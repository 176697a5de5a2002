import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.metrics import Metric
from core.types import Reading
from edge_agent.app import Agent
from edge_agent.config import parse_config
from edge_agent.outbox.sqlite import SqliteOutbox
from simulators.services import Mosquitto

pytestmark = pytest.mark.integration


async def test_sigterm_with_a_frozen_uplink_exits_in_time_and_keeps_the_outbox(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    text = f"""\
gateway: {{id: gw-stop}}
state_dir: {tmp_path / "state"}
rules: [rules.yaml]
uplink: {{host: 127.0.0.1, port: {mosquitto.port}, keepalive_s: 2}}
"""
    agent = Agent(parse_config(text, "edge.yaml"), tmp_path / "edge.yaml", drain_timeout_s=2.0)
    running = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready.wait(), 10)
    mosquitto.pause()
    try:
        now = datetime.now(UTC)
        await agent.pipeline.outbox.put(
            [Reading("d1", Metric.TEMPERATURE_C, 20.0 + i, now) for i in range(50)]
        )
        await asyncio.sleep(0.5)
        started = time.monotonic()
        agent.stop()
        assert await asyncio.wait_for(running, 15) == 0
        assert time.monotonic() - started < 8
    finally:
        mosquitto.resume()
    outbox = await SqliteOutbox.create(tmp_path / "state" / "outbox.sqlite3")
    try:
        assert (await outbox.stats()).depth == 50
        assert await outbox.saved_state() is not None  # the rule state, kept with the queue
    finally:
        await outbox.close()
