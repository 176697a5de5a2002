"""pytest fixtures that run simulated devices against real transports (docs/simulators.md).

- `run_scenario`: start any scenario (file, text or `Scenario`) in the background.
- `virtual_serial_device`: one GB/T 26875.3, Contact ID or Modbus device on a pty link.
- `zigbee2mqtt_sim` / `chirpstack_sim`: Zigbee2MQTT or ChirpStack devices on the `mosquitto` broker.

Each returns a `RunningSimulation`; the run is stopped (and its ptys removed) after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest_asyncio

from simulators.runner import RunOptions, RunStats, ScenarioRunner
from simulators.scenario import Scenario, load_scenario, parse_scenario
from simulators.services import Mosquitto
from simulators.single_devices import mqtt_devices, serial_device
from simulators.truth import TruthRecord, read_truth


@dataclass
class RunningSimulation:
    """A scenario playing in the background of a test."""

    runner: ScenarioRunner
    task: asyncio.Task[RunStats]
    truth_path: Path
    _truth_file: IO[str] = field(repr=False)

    @property
    def scenario(self) -> Scenario:
        """The scenario being played."""
        return self.runner.scenario

    def link(self, device_id: str) -> Path:
        """The pty link of a serial or Modbus device."""
        return self.runner.link_of(self.scenario.device(device_id))

    async def wait(self) -> RunStats:
        """Wait for the run to finish (it lasts the scenario's duration divided by the speed)."""
        stats = await asyncio.shield(self.task)
        self._truth_file.flush()
        return stats

    def truth(self) -> list[TruthRecord]:
        """The ground truth written so far."""
        self._truth_file.flush()
        return read_truth(self.truth_path)

    async def stop(self) -> None:
        """Stop the run now (idempotent)."""
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self._truth_file.close()


ScenarioSource = Scenario | Path | str
RunScenario = Callable[..., Awaitable[RunningSimulation]]


def _as_scenario(source: ScenarioSource) -> Scenario:
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        return load_scenario(source)
    return parse_scenario(source)


@pytest_asyncio.fixture
async def run_scenario(tmp_path: Path) -> AsyncIterator[RunScenario]:
    """Start scenarios in the background.

    Use as `sim = await run_scenario(source, speed=60, broker=url)`: `source` is a `Scenario`, a path, or YAML text. Keyword arguments are `RunOptions` fields
    (`broker` is accepted for `broker_url`). Serial links default to `tmp_path/serial/<device>`; the
    ground truth goes to `tmp_path/truth-<n>.jsonl`.
    """
    running: list[RunningSimulation] = []

    async def start(source: ScenarioSource, **options: object) -> RunningSimulation:
        if "broker" in options:
            options["broker_url"] = options.pop("broker")
        options.setdefault("serial_dir", tmp_path / "serial")
        runner = ScenarioRunner(_as_scenario(source), RunOptions(**options))  # type: ignore[arg-type]
        truth_path = tmp_path / f"truth-{len(running)}.jsonl"
        truth_file = truth_path.open("w", encoding="utf-8")
        task = asyncio.create_task(runner.run(truth_file), name=f"scenario-{runner.scenario.name}")
        ready = asyncio.create_task(runner.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and task.exception() is not None:
            ready.cancel()
            truth_file.close()
            raise task.exception()  # type: ignore[misc]
        sim = RunningSimulation(runner, task, truth_path, truth_file)
        running.append(sim)
        return sim

    yield start
    for sim in running:
        await sim.stop()


@pytest_asyncio.fixture
async def virtual_serial_device(
    run_scenario: RunScenario, tmp_path: Path
) -> Callable[..., Awaitable[RunningSimulation]]:
    """Start one serial device on a pty.

    Use as `dev = await virtual_serial_device("gbt26875", alarm_at=5)`. Protocols: `gbt26875`, `contact-id`, `modbus`. The agent opens `dev.link(dev.device_id)`
    (also `tmp_path/tty-<protocol>`). Keyword arguments go to
    `simulators.single_devices.serial_device` (`interval`, `duration`, `alarm_at`, `alarm_for`,
    `slave_id`, `seed`), plus `speed` and `gbt_timeout_s`.
    """

    async def start(
        protocol: str, *, speed: float = 1.0, gbt_timeout_s: float = 10.0, **kwargs: object
    ) -> RunningSimulation:
        link = tmp_path / f"tty-{protocol}"
        scenario = serial_device(protocol, link, **kwargs)  # type: ignore[arg-type]
        return await run_scenario(scenario, speed=speed, gbt_timeout_s=gbt_timeout_s)

    return start


@pytest_asyncio.fixture
async def zigbee2mqtt_sim(
    run_scenario: RunScenario, mosquitto: Mosquitto
) -> Callable[..., Awaitable[RunningSimulation]]:
    """Start Zigbee2MQTT devices on the test's `mosquitto` broker.

    Use as `sim = await zigbee2mqtt_sim(count=3)`. Keyword arguments go to `simulators.single_devices.mqtt_devices` (`count`, `interval`,
    `duration`, `alarm_at`, `alarm_for`, `device_kind`, `seed`), plus `speed`.
    """

    async def start(*, speed: float = 1.0, **kwargs: object) -> RunningSimulation:
        scenario = mqtt_devices("zigbee2mqtt", **kwargs)  # type: ignore[arg-type]
        return await run_scenario(scenario, speed=speed, broker=mosquitto.url)

    return start


@pytest_asyncio.fixture
async def chirpstack_sim(
    run_scenario: RunScenario, mosquitto: Mosquitto
) -> Callable[..., Awaitable[RunningSimulation]]:
    """Start ChirpStack v4 devices on the test's `mosquitto` broker.

    Use as `sim = await chirpstack_sim(codec="lorawan.milesight.em310_udl")`. Keyword arguments go to `simulators.single_devices.mqtt_devices` (`count`, `codec`,
    `interval`, `duration`, `alarm_at`, `alarm_for`, `device_kind`, `seed`), plus `speed`.
    """

    async def start(*, speed: float = 1.0, **kwargs: object) -> RunningSimulation:
        scenario = mqtt_devices("chirpstack", **kwargs)  # type: ignore[arg-type]
        return await run_scenario(scenario, speed=speed, broker=mosquitto.url)

    return start
