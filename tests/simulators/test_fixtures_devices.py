from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.types import RawFrame
from firmware_adapters.codecs.modbus.dfrobot_sen0492 import CODEC as SEN0492
from firmware_adapters.codecs.serial.gbt26875_3 import CODEC as GBT
from firmware_adapters.codecs.serial.gbt26875_3 import confirm_reply
from firmware_adapters.framing.base import StreamBuffer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from simulators.fixtures_devices import RunningSimulation
from simulators.serial_devices import Gbt26875Transmitter

pytestmark = pytest.mark.integration
NOW = datetime(2026, 1, 5, tzinfo=UTC)
Start = Callable[..., Awaitable[RunningSimulation]]

UNPLUG = """
name: unplug
duration: 30
site: {compounds: [{id: c1}]}
devices:
  - {id: panel, kind: alarm_panel, codec: serial.ademco.contact_id, transport: serial, location: c1, interval: 1, tick: 1}
timeline:
  - {at: 10, fault: unplug, devices: [panel], duration: 10}
"""


async def test_virtual_gbt_device_is_confirmed_and_reports_the_fire(
    virtual_serial_device: Start,
) -> None:
    dev = await virtual_serial_device(
        "gbt26875", interval=2, duration=20, alarm_at=6, alarm_for=6, speed=10, gbt_timeout_s=1
    )
    link = dev.link("gbt26875-1")
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    stream = StreamBuffer(Gbt26875Framer())
    fire: list[bool] = []

    def on_readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            return
        for frame in stream.feed(data):
            os.write(fd, confirm_reply(frame, NOW))
            readings = GBT.decode(RawFrame("t", GBT.id, frame, NOW)).readings
            fire.extend(bool(r.value) for r in readings if r.metric.value == "fire_alarm")

    loop.add_reader(fd, on_readable)
    stats = await dev.wait()
    loop.remove_reader(fd)
    os.close(fd)
    device = dev.runner.serial["gbt26875-1"]
    assert isinstance(device, Gbt26875Transmitter)
    assert device.stats.confirmed == stats.emitted >= 8
    assert device.stats.retries == 0
    assert fire[0] is False
    assert True in fire
    assert fire[-1] is False


async def test_virtual_modbus_sensor_follows_the_model(virtual_serial_device: Start) -> None:
    dev = await virtual_serial_device(
        "modbus", interval=1, duration=6, alarm_at=2, alarm_for=4, speed=3, slave_id=0x50
    )
    fd = os.open(dev.link("modbus-1"), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    distances: list[float] = []
    try:
        for _ in range(6):
            os.write(fd, bytes.fromhex("50 03 00 34 00 01 C8 45"))
            response = b""
            for _ in range(50):
                await asyncio.sleep(0.01)
                try:
                    response += os.read(fd, 64)
                except BlockingIOError:
                    continue
                if len(response) >= 7:
                    break
            result = SEN0492.decode(RawFrame("t", SEN0492.id, response, NOW, {"address": "0x34"}))
            distances.extend(float(r.value) for r in result.readings)
            await asyncio.sleep(0.25)
    finally:
        os.close(fd)
        await dev.stop()
    assert len(distances) == 6
    assert (
        min(distances) < max(distances) - 300
    )  # the shaft floods: the level sensor sees water rise


async def test_unplug_fault_removes_the_link_for_its_window(
    run_scenario: Start, tmp_path: Path
) -> None:
    sim = await run_scenario(UNPLUG, speed=20)
    link = sim.link("panel")
    seen: list[tuple[float, bool]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not sim.task.done():
        seen.append(((loop.time() - start) * 20, link.exists()))
        await asyncio.sleep(0.02)
    stats = await sim.wait()
    assert stats.unplugs == 1
    assert all(present for t, present in seen if t < 9 or 21 < t < 29)
    assert not any(present for t, present in seen if 11 < t < 19)
    assert sim.runner.ports["panel"].plug_count == 2


async def test_modbus_line_unplugged_and_replugged(virtual_serial_device: Start) -> None:
    dev = await virtual_serial_device(
        "modbus", interval=1, duration=9, speed=3, slave_id=0x50, unplug=(3, 3)
    )
    link = dev.link("modbus-1")
    seen: list[tuple[float, bool]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not dev.task.done():
        seen.append(((loop.time() - start) * 3, link.exists()))
        await asyncio.sleep(0.03)
    stats = await dev.wait()
    assert stats.unplugs == 1
    assert all(present for t, present in seen if t < 2.5 or 6.8 < t < 8.5)
    assert not any(present for t, present in seen if 3.5 < t < 5.5)
