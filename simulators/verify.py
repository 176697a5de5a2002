"""Decode what the simulator sends with the real codecs: the check behind "exactly what devices send"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from core.types import DecodeResult, RawFrame
from firmware_adapters.chirpstack import frame_from_up_event, parse_up_event
from firmware_adapters.registry import get_codec
from firmware_adapters.zigbee2mqtt_exposes import (
    BASE_TOPIC,
    frame_from_z2m_message,
    parse_bridge_devices,
)
from simulators.emission import Emission
from simulators.modbus_device import table_start
from simulators.mqtt_devices import ZigbeeDevice
from simulators.scenario import Scenario


def frame_of(scenario: Scenario, e: Emission) -> RawFrame:
    """The `RawFrame` a gateway source would make of an emission (ChirpStack events unwrapped)."""
    device = scenario.device(e.device_id)
    at = scenario.start.astimezone(UTC) + timedelta(seconds=e.t)
    meta = {"device_id": e.device_id}
    payload = e.payload
    if device.transport == "lorawan":
        # The gateway's own parser of ChirpStack events: what it accepts is what ChirpStack sends.
        frame = frame_from_up_event(parse_up_event(e.payload), device.codec, at, e.device_id)
        return RawFrame(
            frame.source_id, frame.codec_id, frame.payload, at, {**frame.meta, "topic": e.topic}
        )
    if device.transport == "zigbee2mqtt":
        bridge = json.dumps([ZigbeeDevice.from_device(device).bridge_entry()])
        index = parse_bridge_devices(bridge)
        base = str(device.address.get("base_topic", BASE_TOPIC))
        z2m = frame_from_z2m_message(e.topic, e.payload, index, at, base_topic=base)
        if z2m is None:
            raise ValueError(f"{e.topic} is not a Zigbee2MQTT device topic")
        return z2m
    if device.transport == "modbus":
        first, _ = table_start(get_codec(device.codec))
        meta["address"] = str(first)
    if e.topic:
        meta["topic"] = e.topic
    return RawFrame(e.device_id, device.codec, payload, at, meta)


def decode_emission(scenario: Scenario, e: Emission) -> DecodeResult:
    """Decode one emission with its device's registered codec (raises `DecodeError` on bad bytes)."""
    frame = frame_of(scenario, e)
    return get_codec(frame.codec_id).decode(frame)


def values_of(result: DecodeResult) -> dict[str, float | bool]:
    """Readings of one decode as `{metric: value}` (the device's own, not its sub-devices')."""
    return {r.metric.value: r.value for r in result.readings}


def at_time(scenario: Scenario, t: float) -> datetime:
    """Wall-clock time of simulated second `t`."""
    return scenario.start.astimezone(UTC) + timedelta(seconds=t)
