from __future__ import annotations

import asyncio
import os
import select
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.types import RawFrame
from firmware_adapters.codecs.ip.sia_dc09 import CODEC as DC09
from firmware_adapters.codecs.ip.sia_dc09 import nak_reply, reply_for
from firmware_adapters.codecs.modbus.dfrobot_sen0492 import CODEC as SEN0492
from firmware_adapters.codecs.serial.ademco_contact_id import CODEC as CONTACT_ID
from firmware_adapters.codecs.serial.gbt26875_3 import CODEC as GBT
from firmware_adapters.codecs.serial.gbt26875_3 import confirm_reply, deny_reply
from firmware_adapters.framing.base import StreamBuffer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from simulators.ip_devices import SiaDc09Transmitter
from simulators.modbus_device import ModbusLine
from simulators.runner import RunOptions, ScenarioRunner
from simulators.scenario import parse_scenario
from simulators.serial_devices import Gbt26875Transmitter
from simulators.serial_pty import PtyPort
from simulators.single_devices import serial_device

pytestmark = pytest.mark.integration
NOW = datetime(2026, 1, 5, tzinfo=UTC)


def open_agent(link: Path) -> int:
    return os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)


def read_for(fd: int, seconds: float) -> bytes:
    """Everything the agent end receives within `seconds` (stops early on EIO: unplugged)."""
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.02)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue
        except OSError:  # EIO: the other end is gone
            break
        out += chunk
    return out


def test_pty_port_link_unplug_and_replug(tmp_path: Path) -> None:
    link = tmp_path / "ttyPANEL"
    with PtyPort(link) as port:
        assert link.is_symlink()
        first = str(link.readlink())
        agent = open_agent(link)
        port.write(b"hello")
        assert read_for(agent, 0.2) == b"hello"
        port.unplug()
        assert not link.exists()
        assert read_for(agent, 0.1) == b""  # the cable is gone: hang-up on the open port
        os.close(agent)
        port.plug()
        assert link.is_symlink()
        assert port.plug_count == 2
        agent = open_agent(link)
        port.write(b"again")
        assert read_for(agent, 0.2) == b"again"
        os.close(agent)
        assert first.startswith("/dev/pts/")


async def _confirm_one(agent: int) -> bytes:
    stream = StreamBuffer(Gbt26875Framer())
    loop = asyncio.get_running_loop()
    while True:
        data = await loop.run_in_executor(None, read_for, agent, 0.05)
        for got in stream.feed(data):
            os.write(agent, confirm_reply(got, NOW))
            return got


async def test_gbt_transmitter_is_confirmed_by_a_receiver(tmp_path: Path) -> None:
    link = tmp_path / "ttyGBT"
    with PtyPort(link) as port:
        tx = Gbt26875Transmitter(port, timeout_s=2.0)
        agent = open_agent(link)
        frame = GBT.encode({"serial": 7, "fire_alarm": True, "component_address": 9})
        got, ok = await asyncio.gather(_confirm_one(agent), tx.send(frame))
        tx.close()
        os.close(agent)
    assert ok
    assert got == frame
    assert tx.stats.confirmed == 1
    assert tx.stats.retries == 0
    readings = GBT.decode(RawFrame("t", GBT.id, got, NOW)).readings
    assert any(r.metric.value == "fire_alarm" and r.value is True for r in readings)


async def test_gbt_transmitter_hears_confirms_on_the_new_pty_after_a_replug(tmp_path: Path) -> None:
    """A replugged pty often gets the old master's fd number: the reply reader must follow it."""
    link = tmp_path / "ttyGBT"
    with PtyPort(link) as port:
        tx = Gbt26875Transmitter(port, timeout_s=1.0, retries=0)
        agent = open_agent(link)
        first = GBT.encode({"serial": 1, "fire_alarm": False})
        _, ok = await asyncio.gather(_confirm_one(agent), tx.send(first))
        assert ok
        os.close(agent)
        port.unplug()
        port.plug()
        agent = open_agent(link)
        second = GBT.encode({"serial": 2, "fire_alarm": True})
        got, ok = await asyncio.gather(_confirm_one(agent), tx.send(second))
        tx.close()
        os.close(agent)
    assert got == second
    assert ok
    assert tx.stats.confirmed == 2


async def test_gbt_transmitter_sends_again_at_once_after_a_deny(tmp_path: Path) -> None:
    link = tmp_path / "ttyGBT"
    with PtyPort(link) as port:
        tx = Gbt26875Transmitter(port, timeout_s=5.0)
        agent = open_agent(link)
        frame = GBT.encode({"serial": 3, "fault": True})
        stream = StreamBuffer(Gbt26875Framer())
        seen: list[bytes] = []

        async def receiver() -> None:
            loop = asyncio.get_running_loop()
            while len(seen) < 2:
                data = await loop.run_in_executor(None, read_for, agent, 0.05)
                for got in stream.feed(data):
                    seen.append(got)
                    reply = deny_reply(got, NOW) if len(seen) == 1 else confirm_reply(got, NOW)
                    os.write(agent, reply)

        loop = asyncio.get_running_loop()
        started = loop.time()
        ok, _ = await asyncio.gather(tx.send(frame), receiver())
        elapsed = loop.time() - started
        tx.close()
        os.close(agent)
    assert ok
    assert seen == [frame, frame]
    assert tx.stats.retries == 1
    assert tx.stats.replies["deny"] == 1
    assert elapsed < 2.0  # not the 5 s timeout


async def test_gbt_transmitter_retries_without_confirm(tmp_path: Path) -> None:
    link = tmp_path / "ttyGBT"
    with PtyPort(link) as port:
        tx = Gbt26875Transmitter(port, timeout_s=0.15, retries=2)
        agent = open_agent(link)
        frame = GBT.encode({"serial": 1, "fire_alarm": False})
        ok = await tx.send(frame)
        seen = list(StreamBuffer(Gbt26875Framer()).feed(read_for(agent, 0.1)))
        tx.close()
        os.close(agent)
    assert not ok
    assert seen == [frame, frame, frame]  # first try and two retries, byte for byte
    assert tx.stats.retries == 2
    assert tx.stats.unconfirmed == 1


async def test_contact_id_panel_on_a_pty_decodes_with_the_real_codec(tmp_path: Path) -> None:
    link = tmp_path / "ttyCID"
    scenario = serial_device("contact-id", link, interval=5, duration=40, alarm_at=10, alarm_for=10)
    runner = ScenarioRunner(scenario, RunOptions(speed=40.0))
    task = asyncio.create_task(runner.run())
    await runner.ready.wait()
    agent = open_agent(link)
    data = await asyncio.get_running_loop().run_in_executor(None, read_for, agent, 1.5)
    await task
    os.close(agent)
    lines = [line for line in data.split(b"\r\n") if line]
    decoded = [
        CONTACT_ID.decode(RawFrame("t", CONTACT_ID.id, line + b"\r\n", NOW)) for line in lines
    ]
    events = [d for d in decoded if d.attributes["event_code"] != "602"]
    qualifiers = [d.attributes["qualifier"] for d in events]
    assert qualifiers.count("new") == qualifiers.count("restore") >= 1
    assert {d.attributes["event_code"] for d in events} >= {"131"}
    # between events the panel sends its periodic test report: the panel itself is online
    tests = [d for d in decoded if d.attributes["event_code"] == "602"]
    assert tests
    assert all(r.metric.value == "online" and r.value is True for d in tests for r in d.readings)


async def test_modbus_level_sensor_answers_a_raw_rtu_request(tmp_path: Path) -> None:
    link = tmp_path / "ttyRS485"
    async with ModbusLine(link, {0x50: SEN0492.id}) as line:
        line.set_values(0x50, {"distance_mm": 1803})
        agent = open_agent(link)
        os.write(agent, bytes.fromhex("50 03 00 34 00 01 C8 45"))  # DFRobot's own example request
        loop = asyncio.get_running_loop()
        response = b""
        for _ in range(40):
            response += await loop.run_in_executor(None, read_for, agent, 0.05)
            if len(response) >= 7:
                break
        os.close(agent)
    assert response == bytes.fromhex("50 03 02 07 0B 06 7F")  # DFRobot's own example response
    result = SEN0492.decode(RawFrame("t", SEN0492.id, response, NOW, {"address": "0x34"}))
    assert [(r.metric.value, r.value) for r in result.readings] == [("distance_mm", 1803)]
    assert line.reads[0x50] == 1


async def test_sia_dc09_transmitter_waits_for_ack_and_retries_after_nak() -> None:
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.readuntil(b"\r"):
            received.append(data)
            reply = nak_reply(NOW) if len(received) == 1 else reply_for(data, NOW)
            writer.write(reply)
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tx = SiaDc09Transmitter("127.0.0.1", port, timeout_s=1.0)
    message = DC09.encode(
        {
            "id": "ADM-CID",
            "sequence": 12,
            "account": "1234",
            "event_code": 110,
            "qualifier": 1,
            "zone": 3,
        }
    )
    try:
        assert await tx.send(message)
    finally:
        await tx.close()
        server.close()
        await server.wait_closed()
    assert received == [message, message]
    assert tx.stats.retries == 1
    assert tx.stats.acked == 1
    assert tx.stats.replies["NAK"] == 1
    readings = DC09.decode(RawFrame("t", DC09.id, received[-1], NOW)).readings
    assert any(r.metric.value == "fire_alarm" and r.value is True for r in readings)


async def test_dc09_panel_in_a_scenario_reaches_the_receiver() -> None:
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.readuntil(b"\r"):
            received.append(data)
            writer.write(reply_for(data, NOW))
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scenario = parse_scenario(
        f"""
name: dc09
duration: 60
site: {{compounds: [{{id: c1}}]}}
devices:
  - {{id: panel, kind: alarm_panel, codec: ip.sia.dc09, transport: ip, location: c1, interval: 5, tick: 1,
     address: {{receiver: "127.0.0.1:{port}", account: "5678", zone: 4}}}}
timeline:
  - {{at: 10, device: panel, incident: breach, duration: 20}}
"""
    )
    runner = ScenarioRunner(scenario, RunOptions(speed=30))
    stats = await runner.run()
    server.close()
    await server.wait_closed()
    tx = runner.serial["panel"]
    assert isinstance(tx, SiaDc09Transmitter)
    assert tx.stats.acked == stats.emitted == len(received)
    decoded = [DC09.decode(RawFrame("t", DC09.id, m, NOW)) for m in received]
    codes = [d.attributes["event_code"] for d in decoded]
    # 130 and 131, new and restore; periodic tests (602) at the reports between
    assert len([c for c in codes if c != "602"]) == 4
    assert "602" in codes
    assert {d.attributes["account"] for d in decoded} == {"5678"}
    assert [d.attributes["sequence"] for d in decoded] == sorted(
        d.attributes["sequence"] for d in decoded
    )


async def test_a_modbus_sensor_holds_its_first_reading_before_the_scenario_starts(
    tmp_path: Path,
) -> None:
    """A gateway polling at once reads a measurement, never the zeros of an empty register bank."""
    scenario = parse_scenario(
        f"""
name: well
duration: 30
site: {{compounds: [{{id: c1}}]}}
devices:
  - {{id: well, kind: manhole, codec: modbus.dfrobot.sen0492, transport: modbus, location: c1,
     interval: 10, address: {{link: "{tmp_path / "ttyWELL"}"}}}}
"""
    )
    runner = ScenarioRunner(scenario, RunOptions(speed=30, origin=time.time() + 1.0))
    task = asyncio.create_task(runner.run())
    await runner.ready.wait()
    (line,) = runner.modbus.values()
    registers = dict(line.registers[80])
    await task
    assert registers.get(0x34, 0) > 0
