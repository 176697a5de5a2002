import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusSerialServer
from source_recorder import Recorder

from core.clock import SystemClock
from core.metrics import Metric
from edge_agent.selfstats import PipelineStats
from edge_agent.sources.base import Backoff, SourceContext
from edge_agent.sources.modbus_poll import Block, ModbusBusSource, PolledDevice
from firmware_adapters.framing.modbus_rtu import build_response
from firmware_adapters.registry import CODECS
from simulators.serial_pty import SocatPair

pytestmark = pytest.mark.integration


def make_server(port: Path) -> ModbusSerialServer:
    # Register n lives at block address n + 1 (pymodbus 3.16 data blocks start at 1).
    holding = ModbusSequentialDataBlock(1, [0] * 0x34 + [1803, 42])  # type: ignore[no-untyped-call]
    inputs = ModbusSequentialDataBlock(1, [7, 8, 9])  # type: ignore[no-untyped-call]
    context = ModbusServerContext(
        devices={0x50: ModbusDeviceContext(hr=holding, ir=inputs)}, single=False
    )
    return ModbusSerialServer(context, framer=FramerType.RTU, port=str(port), baudrate=9600)


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[tuple[SocatPair, Path]]:
    pair = SocatPair(tmp_path / "slave", tmp_path / "agent").start()
    yield pair, tmp_path / "slave"
    pair.stop()


async def test_poller_reads_register_blocks_and_reports_silent_devices(
    bus: tuple[SocatPair, Path],
) -> None:
    pair, slave_port = bus
    server = make_server(slave_port)
    serving = asyncio.create_task(server.serve_forever())
    recorder = Recorder()
    level = PolledDevice(
        device_id="level-1",
        codec_id="modbus.dfrobot.sen0492",
        slave=0x50,
        interval_s=0.1,
        timeout_s=0.5,
        blocks=(Block("holding", 0x34, 2), Block("input", 0, 3)),
    )
    absent = PolledDevice(
        "level-2", "modbus.dfrobot.sen0492", 0x51, 0.1, 0.3, (Block("holding", 0x34, 1),)
    )
    source = ModbusBusSource(
        name="rs485-1",
        port=str(pair.agent_link),
        devices=[level, absent],
        ctx=SourceContext(recorder.submit, recorder.fault, PipelineStats(), SystemClock()),
        backoff=Backoff(first=0.05, maximum=0.2),
    )
    polling = asyncio.create_task(source.run())
    try:
        await recorder.until(lambda: len(recorder.frames) >= 4)
        holding, inputs = recorder.frames[:2]
        assert holding.payload == build_response(0x50, [1803, 42], 3)
        assert inputs.payload == build_response(0x50, [7, 8, 9], 4)
        assert (holding.meta["address"], inputs.meta["address"]) == ("52", "0")
        assert holding.device_id == "level-1"
        assert holding.meta["slave"] == "80"
        result = CODECS["modbus.dfrobot.sen0492"].decode(holding)
        assert [(r.metric, r.value) for r in result.readings] == [(Metric.DISTANCE_MM, 1803)]
        await recorder.until(lambda: ("level-2", True) in recorder.faults)
        assert all(f.device_id == "level-1" for f in recorder.frames)
        # The sensor goes silent: its polls time out, one fault is reported, then it comes back.
        await server.shutdown()  # type: ignore[no-untyped-call]
        serving.cancel()
        await recorder.until(lambda: ("level-1", True) in recorder.faults)
        count = len(recorder.frames)
        server = make_server(slave_port)
        serving = asyncio.create_task(server.serve_forever())
        await recorder.until(lambda: ("level-1", False) in recorder.faults, limit=10)
        await recorder.until(lambda: len(recorder.frames) > count)
        assert recorder.faults.count(("level-1", True)) == 1
        assert recorder.faults.count(("level-2", True)) == 1
    finally:
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        await server.shutdown()  # type: ignore[no-untyped-call]
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
