"""Play a scenario in (scaled) real time onto real transports, writing the ground truth as it goes.

The bytes come from offline generation (`simulators.timeline.generate`), so a run and an offline
file of the same scenario and seed hold the same bytes. The runner only decides *when* and *where*:
MQTT devices publish through one `MqttPublisher`, serial devices write to a `PtyPort` each (GB/T
26875.3 transmitters wait for confirms in their own task, so one slow receiver does not hold the
others back), and link faults really happen: an `unplug` window unplugs the pty and replugs it
afterwards, a `broker_disconnect` window drops the MQTT connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import aiomqtt

from firmware_adapters.registry import get_codec
from simulators.emission import Emission
from simulators.faults import BrokerDisconnect, Fault, Silent, Unplug
from simulators.ip_devices import SiaDc09Transmitter
from simulators.modbus_device import ModbusLine, table_start
from simulators.mqtt_devices import (
    MqttPublisher,
    ZigbeeDevice,
    announce_zigbee_bridge,
)
from simulators.scenario import Device, Scenario
from simulators.serial_devices import Gbt26875Transmitter, LineDevice
from simulators.serial_pty import PtyPort
from simulators.timeline import Generated, generate, scenario_faults
from simulators.truth import TruthRecord, TruthWriter

log = logging.getLogger(__name__)

Action = Callable[[], Awaitable[None]]
MIN_CONFIRM_WAIT_S = 0.25
"""The shortest real time a transmitter waits for a confirm, however fast the scenario plays."""
_LATE_WARNING_S = 0.1
"""Starting this much after a given origin is worth a warning (what was due is played at once)."""


@dataclass(slots=True)
class RunStats:
    """What a run did."""

    emitted: int = 0
    lost: int = 0
    truth: int = 0
    unplugs: int = 0
    disconnects: int = 0
    per_device: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class RunOptions:
    """How to play a scenario."""

    seed: int | None = None
    speed: float = 1.0
    broker_url: str | None = None
    serial_dir: Path = Path("/tmp/steward-sim")  # noqa: S108 - the documented default place for links
    gbt_timeout_s: float = 10.0
    """How long a GB/T 26875.3 transmitter waits for each confirm, in simulated seconds (a real
    transmitter's timer runs on its own clock): at `speed` it waits `gbt_timeout_s / speed` real
    seconds, never less than `MIN_CONFIRM_WAIT_S` (the receiver commits a frame before confirming)."""
    duration: float | None = None
    receiver: str | None = None
    """`host:port` of the SIA DC-09 receiver for `ip` devices without `address.receiver`."""
    drain_s: float = 1.0
    """How long serial and DC-09 devices may finish their last exchange after the scenario ends."""
    origin: float | None = None
    """Unix wall time (epoch seconds) at which the scenario's t = 0 is played; the runner sets up
    its transports, waits until then and keeps to that schedule, so another process given the same
    origin, speed and start (`core.clock.ScaledClock`) shares its simulated clock. If the origin
    has passed, what was due is played at once to catch up. None: t = 0 is when playing starts."""


def link_of(device: Device, serial_dir: Path) -> Path:
    """Where the agent opens a serial or Modbus device: `address.link`, else `serial_dir/<id>`."""
    link = device.address.get("link")
    return Path(str(link)) if link else serial_dir / device.id


class ScenarioRunner:
    """Plays one scenario; use `await runner.run(truth_stream)`."""

    def __init__(self, scenario: Scenario, options: RunOptions) -> None:
        """Generate the scenario's bytes and prepare its transports."""
        if options.speed <= 0:
            raise ValueError("speed must be positive")
        if options.origin is not None and not math.isfinite(options.origin):
            raise ValueError("the origin must be a Unix time in seconds")
        self.scenario = scenario
        self.options = options
        self.generated: Generated = generate(scenario, seed=options.seed, duration=options.duration)
        self.stats = RunStats()
        self.ports: dict[str, PtyPort] = {}
        self.serial: dict[str, LineDevice | SiaDc09Transmitter] = {}
        self.modbus: dict[Path, ModbusLine] = {}
        self._modbus_of: dict[str, ModbusLine] = {}
        self.publisher: MqttPublisher | None = None
        self._queues: dict[str, asyncio.Queue[Emission | None]] = {}
        self.ready = asyncio.Event()
        self.origin: float | None = None
        """The Unix wall time of t = 0, once playing has begun."""

    def _confirm_wait_s(self) -> float:
        return max(self.options.gbt_timeout_s / self.options.speed, MIN_CONFIRM_WAIT_S)

    def link_of(self, device: Device) -> Path:
        """Where the agent opens a serial device."""
        return link_of(device, self.options.serial_dir)

    def _needs_mqtt(self) -> bool:
        return any(d.transport in {"lorawan", "zigbee2mqtt"} for d in self.scenario.devices)

    async def _setup(self) -> None:
        for d in self.scenario.devices:
            if d.transport == "serial":
                port = PtyPort(self.link_of(d)).plug()
                self.ports[d.id] = port
                self.serial[d.id] = (
                    Gbt26875Transmitter(port, timeout_s=self._confirm_wait_s())
                    if d.codec.startswith("serial.gbt26875")
                    else LineDevice(port)
                )
            elif d.transport == "ip":
                self.serial[d.id] = SiaDc09Transmitter(*self._receiver_of(d))
        await self._setup_modbus()
        if self._needs_mqtt():
            if self.options.broker_url is None:
                raise ValueError("this scenario has MQTT devices: give a broker URL")
            client_id = f"propsim-{self.scenario.name}-{os.getpid()}-{id(self):x}"
            self.publisher = MqttPublisher(self.options.broker_url, client_id)
            await self.publisher.connect()
            zigbee = [
                ZigbeeDevice.from_device(d)
                for d in self.scenario.devices
                if d.transport == "zigbee2mqtt"
            ]
            if zigbee:
                await announce_zigbee_bridge(self.publisher, zigbee)

    def _receiver_of(self, device: Device) -> tuple[str, int]:
        text = str(device.address.get("receiver", self.options.receiver or ""))
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{device.id}: give the DC-09 receiver as host:port")
        return host, int(port)

    async def _setup_modbus(self) -> None:
        lines: dict[Path, dict[int, str]] = {}
        for d in self.scenario.devices:
            if d.transport == "modbus":
                _, default_slave = table_start(get_codec(d.codec))
                slave = int(d.address.get("slave_id", default_slave))
                lines.setdefault(self.link_of(d), {})[slave] = d.codec
        for link, slaves in lines.items():
            self.modbus[link] = await ModbusLine(link, slaves).start()
        for d in self.scenario.devices:
            if d.transport == "modbus":
                self._modbus_of[d.id] = self.modbus[self.link_of(d)]
        # A sensor measures as it powers up: its registers hold its first reading before anyone
        # can poll, never the zeros of an empty register bank.
        first: dict[str, Emission] = {}
        for e in self.generated.emissions:
            if e.device_id in self._modbus_of and e.device_id not in first:
                first[e.device_id] = e
        for e in first.values():
            self._load_registers(e)

    async def _teardown(self) -> None:
        for device in self.serial.values():
            if isinstance(device, Gbt26875Transmitter):
                device.close()
            elif isinstance(device, SiaDc09Transmitter):
                await device.close()
        for line in self.modbus.values():
            await line.stop()
        for port in self.ports.values():
            port.close()
        if self.publisher is not None:
            await self.publisher.disconnect()

    async def run(self, truth: IO[str] | None = None) -> RunStats:
        """Play every emission at its time, act out link faults, write truth records when due."""
        writer = TruthWriter(truth) if truth is not None else None
        actions = self._schedule(writer)
        try:
            await self._setup()
            async with asyncio.TaskGroup() as tg:
                workers = []
                for device_id in self.serial:
                    self._queues[device_id] = asyncio.Queue()
                    workers.append(
                        tg.create_task(self._serial_worker(device_id), name=f"serial-{device_id}")
                    )
                self.ready.set()
                loop = asyncio.get_running_loop()
                origin = self._loop_origin(loop)
                for t, action in actions:
                    delay = origin + t / self.options.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await action()
                for queue in self._queues.values():
                    queue.put_nowait(None)
                # Devices still waiting for a confirm or an ACK give up when the scenario ends.
                if workers:
                    _, busy = await asyncio.wait(workers, timeout=self.options.drain_s)
                    for task in busy:
                        task.cancel()
        finally:
            await self._teardown()
        self.stats.truth = writer.count if writer else 0
        return self.stats

    def _loop_origin(self, loop: asyncio.AbstractEventLoop) -> float:
        """The event loop's time of t = 0; records the wall time of t = 0 in `self.origin`."""
        now_loop, now_wall = loop.time(), time.time()
        if self.options.origin is None:
            self.origin = now_wall
            return now_loop
        self.origin = self.options.origin
        late = now_wall - self.options.origin
        if late > _LATE_WARNING_S:
            log.warning("the origin passed %.3f s ago: playing what was due at once", late)
        return now_loop - late

    def _schedule(
        self, writer: TruthWriter | None
    ) -> list[tuple[float, Callable[[], Awaitable[None]]]]:
        actions: list[tuple[float, int, Callable[[], Awaitable[None]]]] = []
        order = 0

        def add(t: float, action: Callable[[], Awaitable[None]]) -> None:
            nonlocal order
            actions.append((t, order, action))
            order += 1

        for e in self.generated.emissions:
            add(e.t, lambda e=e: self._emit(e))  # type: ignore[misc]
        if writer is not None:
            for rec in self.generated.truth:
                add(rec.t_s, lambda rec=rec: _write(writer, rec))  # type: ignore[misc]
        for fault in scenario_faults(self.scenario):
            for start_action, end_action in self._link_actions(fault):
                add(fault.scope.start, start_action)
                add(fault.scope.end, end_action)
        end = self.options.duration or self.scenario.duration
        add(end, _nothing)  # the run lasts the whole scenario, so the last bytes can be read
        return [(t, a) for t, _, a in sorted(actions, key=lambda x: (x[0], x[1])) if t <= end]

    def _link_actions(self, fault: Fault) -> list[tuple[Action, Action]]:
        """What a fault does to the transports when its window opens and closes."""
        wired = [d.id for d in self.scenario.devices if d.transport in {"serial", "modbus"}]
        if isinstance(fault, Unplug):
            return [
                (partial(self._unplug, d), partial(self._replug, d))
                for d in fault.scope.devices or wired
            ]
        if isinstance(fault, BrokerDisconnect):
            return [(self._disconnect, self._reconnect)]
        if isinstance(fault, Silent):
            # A silent Zigbee device is marked offline by the bridge, and online again after.
            zigbee = [d.id for d in self.scenario.devices if d.transport == "zigbee2mqtt"]
            return [
                (
                    partial(self._availability, d, online=False),
                    partial(self._availability, d, online=True),
                )
                for d in zigbee
                if d in (fault.scope.devices or zigbee)
            ]
        return []

    async def _emit(self, e: Emission) -> None:
        self.stats.per_device[e.device_id] = self.stats.per_device.get(e.device_id, 0) + 1
        self.stats.emitted += 1
        if e.device_id in self._queues:
            self._queues[e.device_id].put_nowait(e)
            return
        if e.device_id in self._modbus_of:
            if not self._load_registers(e):
                self.stats.lost += 1  # a corrupted ADU never reaches the register bank
            return
        if self.publisher is None or not e.topic:
            self.stats.lost += 1
            return
        if not await self.publisher.publish(e.topic, e.payload):
            self.stats.lost += 1

    def _load_registers(self, e: Emission) -> bool:
        """Put a Modbus device's emitted ADU into its register bank; False for a corrupted one."""
        line = self._modbus_of[e.device_id]
        if len(e.payload) > 3 and e.payload[0] in line.registers:  # noqa: PLR2004 - ADU header
            line.load_response(e.payload[0], e.payload)
            return True
        return False

    async def _serial_worker(self, device_id: str) -> None:
        queue = self._queues[device_id]
        device = self.serial[device_id]
        while (e := await queue.get()) is not None:
            if not await device.send(e.payload):
                self.stats.lost += 1

    async def _availability(self, device_id: str, *, online: bool) -> None:
        if self.publisher is None:
            return
        z = ZigbeeDevice.from_device(self.scenario.device(device_id))
        base = str(self.scenario.device(device_id).address.get("base_topic", "zigbee2mqtt"))
        state = json.dumps({"state": "online" if online else "offline"})
        await self.publisher.publish(
            f"{base}/{z.friendly_name}/availability", state, qos=1, retain=True
        )

    async def _unplug(self, device_id: str) -> None:
        if device_id in self.ports:
            self.ports[device_id].unplug()
            self.stats.unplugs += 1
        elif (line := self._modbus_of.get(device_id)) is not None and line.running:
            await line.stop()  # the RS-485 adapter is pulled: the whole line goes
            self.stats.unplugs += 1

    async def _replug(self, device_id: str) -> None:
        if device_id in self.ports:
            self.ports[device_id].plug()
        elif (line := self._modbus_of.get(device_id)) is not None and not line.running:
            await line.start()

    async def _disconnect(self) -> None:
        if self.publisher is not None:
            await self.publisher.disconnect()
            self.stats.disconnects += 1

    async def _reconnect(self) -> None:
        if self.publisher is not None:
            try:
                await self.publisher.connect()
            except (aiomqtt.MqttError, OSError) as err:
                log.warning("broker still unreachable after the outage: %s", err)


async def _nothing() -> None:
    """The end-of-run marker."""


async def _write(writer: TruthWriter, record: TruthRecord) -> None:
    writer.write(record)
