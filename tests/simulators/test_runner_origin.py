"""`RunOptions.origin` / `propsim run --origin`: t = 0 of the scenario is played at a given wall time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from simulators.runner import RunOptions, ScenarioRunner
from simulators.scenario import Scenario, parse_scenario
from simulators.services import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SPEED = 60.0
TOPIC = "zigbee2mqtt/b1/kitchen"
SCENARIO = """\
name: origin
seed: 3
start: 2030-06-01T06:00:00+08:00
duration: 1m
site:
  path: hp/nj/xh/g1
  compounds:
    - id: c1
      buildings:
        - {id: b1, units: [u1]}
devices:
  - {id: smoke-1, kind: smoke, codec: zigbee2mqtt.generic.exposes, transport: zigbee2mqtt,
     location: c1/b1/u1, interval: 10s, address: {friendly_name: b1/kitchen, model: HS3SA/HS1SA}}
"""
PROPSIM = [sys.executable, "-c", "import sys; from simulators.cli import main; sys.exit(main())"]


def scenario() -> Scenario:
    return parse_scenario(SCENARIO, "origin.yaml")


async def play(broker: Mosquitto, origin: float) -> tuple[ScenarioRunner, list[float], float]:
    """Play the scenario from `origin`; return the runner, when each report arrived and the end."""
    runner = ScenarioRunner(
        scenario(), RunOptions(speed=SPEED, broker_url=broker.url, origin=origin)
    )
    arrivals: list[float] = []
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="listener") as client:
        await client.subscribe(TOPIC, qos=1)

        async def listen() -> None:
            async for _ in client.messages:
                arrivals.append(time.time())  # noqa: PERF401 - recorded as each one arrives

        listener = asyncio.create_task(listen())
        await runner.run()
        ended = time.time()
        await asyncio.sleep(0.3)
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    return runner, arrivals, ended


async def test_the_runner_waits_for_the_origin_and_keeps_to_it(mosquitto: Mosquitto) -> None:
    origin = time.time() + 1.5
    runner, arrivals, ended = await play(mosquitto, origin)
    assert runner.origin == origin
    due = [origin + e.t / SPEED for e in runner.generated.emissions]
    assert len(arrivals) == len(due) > 3
    for arrived, at in zip(arrivals, due, strict=True):
        assert at - 0.01 <= arrived <= at + 0.5
    assert origin + 60 / SPEED <= ended <= origin + 60 / SPEED + 0.5


async def test_a_passed_origin_is_caught_up_at_once(mosquitto: Mosquitto) -> None:
    origin = time.time() - 0.75  # 45 simulated seconds ago: reports every 10 s are overdue
    runner, arrivals, ended = await play(mosquitto, origin)
    overdue = [e for e in runner.generated.emissions if e.t < 40]
    assert len(overdue) >= 3
    # Played together (on schedule they would be 10 simulated s = 0.17 real s apart) ...
    assert max(arrivals[: len(overdue)]) - min(arrivals[: len(overdue)]) < 0.1
    # ... and the rest on the origin's schedule, so the run ends when it is due.
    assert ended <= origin + 60 / SPEED + 0.4


def test_runner_options_refuse_a_bad_origin() -> None:
    with pytest.raises(ValueError, match="origin"):
        ScenarioRunner(scenario(), RunOptions(origin=float("nan")))


def test_propsim_prints_the_agents_clock_spec(tmp_path: Path) -> None:
    path = tmp_path / "origin.yaml"
    path.write_text(SCENARIO)
    ok = subprocess.run(
        [*PROPSIM, "clock", str(path), "--speed", "180", "--origin", "1765000000.5"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "2030-06-01T06:00:00+08:00@1765000000.5x180.0\n"
    bad = subprocess.run(
        [*PROPSIM, "clock", str(path), "--speed", "0", "--origin", "1765000000"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "speed must be a positive number" in bad.stderr
