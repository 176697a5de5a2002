"""A Modbus sensor with its register table in the gateway's configuration (`modbus.generic.table`).

The binding lists `fields` (and `function`); the check reports every problem of the table on its
line; the agent reads the table in one block and the shipped codec decodes what the poller read
from a real Modbus RTU slave (pymodbus) on a pty-backed serial line.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusSerialServer
from source_recorder import Recorder

from core.clock import SystemClock
from core.metrics import Metric
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.commands.check import reported_metrics
from edge_agent.config import ModbusBinding, RegisterBlock, parse_config
from edge_agent.config_errors import ConfigError
from edge_agent.selfstats import PipelineStats
from edge_agent.source_factory import build_sources
from edge_agent.sources.base import SourceContext
from edge_agent.sources.modbus_poll import ModbusBusSource
from firmware_adapters.registry import CODECS
from simulators.serial_pty import SocatPair

HEAD = """\
gateway: {id: gw-01, site: huangpu/nanjing-rd/xinhua/g03}
sources:
  modbus:
    - {id: rs485-1, port: PORT}
devices:
"""
"""Lines 1-5; a test's devices start at line 6."""

LEVEL_SENSOR = """\
  - id: tank-1
    codec: modbus.generic.table
    kind: manhole
    modbus:
      bus: rs485-1
      slave: 7
      interval_s: 0.1
      timeout_s: 0.5
      function: 4
      fields:
        - {metric: water_level_mm, address: 16, type: u32}
        - {metric: temperature_c, address: 18, type: s16, scale: 0.1}
        - {metric: tamper, address: 20}
"""


def config_of(devices: str, port: str = "/dev/ttyUSB0") -> str:
    return HEAD.replace("PORT", port) + devices


def errors_of(devices: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_of(devices), "edge.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_a_register_table_in_the_binding_is_read_in_one_block() -> None:
    config = parse_config(config_of(LEVEL_SENSOR), "edge.yaml")
    (device,) = config.devices
    assert device.modbus is not None
    assert device.modbus.blocks() == (RegisterBlock(table="input", address=16, count=5),)
    assert reported_metrics(device) == {
        Metric.WATER_LEVEL_MM,
        Metric.TEMPERATURE_C,
        Metric.TAMPER,
    }


def test_explicit_blocks_win_over_the_tables_span() -> None:
    binding = ModbusBinding(
        bus="rs485-1",
        slave=1,
        registers=(RegisterBlock(address=0, count=2),),
        fields=({"metric": "water_level_mm", "address": 0},),
    )
    assert binding.blocks() == (RegisterBlock(address=0, count=2),)


def test_every_problem_of_a_table_is_reported_on_its_line() -> None:
    devices = """\
  - id: tank-1
    codec: modbus.generic.table
    modbus:
      bus: rs485-1
      slave: 7
      fields:
        - {metric: litres, address: 0}
        - {metric: temperature_c, address: 70000}
        - {metric: tamper, address: 1, type: u64}
"""
    found = errors_of(devices)
    assert found == [
        "edge.yaml:12: devices.0.modbus.fields.0.metric: unknown metric 'litres'",
        "edge.yaml:13: devices.0.modbus.fields.1.address: 70000 is not a register address 0-65535",
        "edge.yaml:14: devices.0.modbus.fields.2.type: 'u64' is not one of u16, s16, u32, s32, f32",
    ], found


def test_a_generic_table_device_without_its_table_is_an_error() -> None:
    devices = """\
  - id: tank-1
    codec: modbus.generic.table
    modbus: {bus: rs485-1, slave: 7, registers: [{address: 0}]}
"""
    (error,) = errors_of(devices)
    assert error == (
        "edge.yaml:8: devices.0.modbus: modbus.generic.table needs the register table: "
        "list its 'fields'"
    )


def test_a_table_on_another_codec_and_a_binding_without_blocks_are_errors() -> None:
    devices = """\
  - id: level-1
    codec: modbus.dfrobot.sen0492
    modbus:
      bus: rs485-1
      slave: 80
      fields: [{metric: distance_mm, address: 52}]
  - id: level-2
    codec: modbus.dfrobot.sen0492
    modbus: {bus: rs485-1, slave: 81}
"""
    assert errors_of(devices) == [
        (
            "edge.yaml:11: devices.0.modbus.fields: a register table applies only to codec "
            "modbus.generic.table"
        ),
        "edge.yaml:14: devices.1.modbus: list at least one block under 'registers'",
    ]


def test_a_table_wider_than_one_read_needs_its_blocks() -> None:
    devices = """\
  - id: tank-1
    codec: modbus.generic.table
    modbus:
      bus: rs485-1
      slave: 7
      fields: [{metric: water_level_mm, address: 0}, {metric: tamper, address: 200}]
"""
    (error,) = errors_of(devices)
    assert error.startswith("edge.yaml:11: devices.0.modbus.fields: the table spans 201 registers")


@pytest.mark.integration
async def test_the_agent_polls_a_configured_table_and_the_codec_decodes_it(
    tmp_path: Path,
) -> None:
    pair = SocatPair(tmp_path / "slave", tmp_path / "agent").start()
    # Input register n lives at block address n + 1 (pymodbus data blocks start at 1).
    registers = [0] * 16 + [0x0001, 0x86A0, 0xFF38, 0, 1]  # 100000 mm, -20.0 °C, tamper set
    context = ModbusServerContext(
        devices={
            7: ModbusDeviceContext(
                ir=ModbusSequentialDataBlock(1, registers)  # type: ignore[no-untyped-call]
            )
        },
        single=False,
    )
    server = ModbusSerialServer(
        context, framer=FramerType.RTU, port=str(tmp_path / "slave"), baudrate=9600
    )
    serving = asyncio.create_task(server.serve_forever())
    config = parse_config(config_of(LEVEL_SENSOR, str(pair.agent_link)), "edge.yaml")
    recorder = Recorder()
    ctx = SourceContext(recorder.submit, recorder.fault, PipelineStats(), SystemClock())
    (source,) = build_sources(config, ctx, BindingsHolder(Bindings.build(config.devices)))
    assert isinstance(source, ModbusBusSource)
    polling = asyncio.create_task(source.run())
    try:
        await recorder.until(lambda: len(recorder.frames) >= 1)
        frame = recorder.frames[0]
        result = CODECS[frame.codec_id].decode(frame)
        values = {r.metric: r.value for r in result.readings}
        assert values == {
            Metric.WATER_LEVEL_MM: 100000,
            Metric.TEMPERATURE_C: pytest.approx(-20.0),
            Metric.TAMPER: True,
        }
        assert result.warnings == ()
    finally:
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        await server.shutdown()  # type: ignore[no-untyped-call]
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        pair.stop()
