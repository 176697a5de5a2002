"""Builds the sources a config asks for: serial ports, Modbus buses, the DC-09 port, the local broker."""

from __future__ import annotations

import orjson

from edge_agent.bindings import BindingsHolder
from edge_agent.config import EdgeConfig, ModbusBinding
from edge_agent.sources.base import Backoff, Source, SourceContext
from edge_agent.sources.dc09 import Dc09Receiver, sia_dc09_answer
from edge_agent.sources.mqtt import MqttSource
from edge_agent.sources.replies import REPLIES
from firmware_adapters.codecs.modbus.generic_table import TABLE_META
from firmware_adapters.registry import CODECS


def build_sources(config: EdgeConfig, ctx: SourceContext, bindings: BindingsHolder) -> list[Source]:
    """Return one source per configured port, bus, receiver and broker (config already validated)."""
    sources: list[Source] = []
    if config.sources.serial:
        # pyserial and pymodbus are imported only by configs that use them (they cost RSS).
        from edge_agent.sources.serial import SerialSource  # noqa: PLC0415
    for serial_cfg in config.sources.serial:
        make_framer = CODECS[serial_cfg.codec].framer
        if make_framer is None:  # excluded by config validation
            raise ValueError(f"codec {serial_cfg.codec} has no framer")
        sources.append(
            SerialSource(
                name=serial_cfg.id,
                port=serial_cfg.port,
                codec_id=serial_cfg.codec,
                framer=make_framer(),
                ctx=ctx,
                device_id=serial_cfg.bound_device,
                baudrate=serial_cfg.baudrate,
                reply=REPLIES.get(serial_cfg.codec),
                backoff=Backoff(first=0.2, maximum=serial_cfg.reopen_max_s),
            )
        )
    if config.sources.modbus:
        from edge_agent.sources.modbus_poll import (  # noqa: PLC0415
            Block,
            ModbusBusSource,
            PolledDevice,
        )
    for bus in config.sources.modbus:
        devices = [
            PolledDevice(
                device_id=d.id,
                codec_id=d.codec,
                slave=d.modbus.slave,
                interval_s=d.modbus.interval_s,
                timeout_s=d.modbus.timeout_s,
                blocks=tuple(Block(b.table, b.address, b.count) for b in d.modbus.blocks()),
                meta=_table_meta(d.modbus),
            )
            for d in config.devices
            if d.modbus is not None and d.modbus.bus == bus.id
        ]
        if devices:
            sources.append(
                ModbusBusSource(
                    name=bus.id,
                    port=bus.port,
                    devices=devices,
                    ctx=ctx,
                    baudrate=bus.baudrate,
                    parity=bus.parity,
                    stopbits=bus.stopbits,
                )
            )
    dc09 = config.sources.dc09
    if dc09 is not None:
        sources.append(
            Dc09Receiver(
                name="dc09",
                host=dc09.host,
                port=dc09.port,
                codec_id=dc09.codec,
                answer=sia_dc09_answer,
                lookup=bindings.account_device,
                ctx=ctx,
            )
        )
    mqtt = config.sources.mqtt
    if mqtt is not None and (mqtt.zigbee2mqtt is not None or mqtt.chirpstack is not None):
        sources.append(
            MqttSource(
                name="local-mqtt",
                broker=mqtt,
                bindings=bindings,
                ctx=ctx,
                client_id=mqtt.client_id or f"steward-{config.gateway.id}-sources",
            )
        )
    return sources


def _table_meta(binding: ModbusBinding) -> dict[str, str]:
    """The frame meta that carries a binding's register table to `modbus.generic.table`."""
    if not binding.fields:
        return {}
    table = {"function": binding.function, "fields": list(binding.fields)}
    return {TABLE_META: orjson.dumps(table).decode()}
