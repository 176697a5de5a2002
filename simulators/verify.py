"""Decode what the simulator sends with the real codecs: the check behind "exactly what devices send"."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from core.types import DecodeResult, RawFrame
from firmware_adapters.registry import get_codec
from simulators.emission import Emission
from simulators.scenario import Scenario


def frame_of(scenario: Scenario, e: Emission) -> RawFrame:
    """The `RawFrame` a gateway source would make of an emission (ChirpStack events unwrapped)."""
    device = scenario.device(e.device_id)
    at = scenario.start.astimezone(UTC) + timedelta(seconds=e.t)
    meta = {"device_id": e.device_id}
    payload = e.payload
    if device.transport == "lorawan":
        event = json.loads(e.payload)
        payload = base64.b64decode(event["data"])
        meta |= {"fport": str(event["fPort"]), "fcnt": str(event["fCnt"])}
        rx = event["rxInfo"][0]
        meta |= {"rssi": str(rx["rssi"]), "snr": str(rx["snr"])}
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
