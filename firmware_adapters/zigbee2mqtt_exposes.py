"""Zigbee2MQTT device index: parse the retained `zigbee2mqtt/bridge/devices`, route messages to frames.

How a state message reaches `zigbee2mqtt.generic.exposes` (a pure function of the frame):
- `meta["kind"]` is `state` or `availability`;
- `meta["model"]` is the device's `definition.model` and `meta["exposes"]` a compact JSON list of
  `[property, type, value_on, value_off, unit]` built from its exposes (`compact_exposes`). The codec
  parses it once per distinct string (`lru_cache`), so building frames costs a dict lookup.
- Without exposes (unknown device, or `edge-agent decode --model` alone) the codec maps the properties
  it knows generically; exposes only refine them (e.g. `contact` is inverted: `value_on` is `false`).

`frame_from_z2m_message(topic, payload, index, received_at)` is what the edge agent's MQTT source
calls for every message under the base topic; it returns None for bridge topics, `/set` and `/get`
commands and empty (cleared retained) payloads. The frame's device id is the friendly name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final

import orjson

from core.types import RawFrame

BASE_TOPIC: Final = "zigbee2mqtt"
CODEC_ID: Final = "zigbee2mqtt.generic.exposes"
ExposeValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Expose:
    """One exposed property of a device definition (features of composite exposes are flattened)."""

    property: str
    type: str
    value_on: ExposeValue = None
    value_off: ExposeValue = None
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Z2mDevice:
    """A device of `bridge/devices`, with its exposes already compacted for frame metadata."""

    friendly_name: str
    ieee_address: str
    model: str
    vendor: str
    exposes: tuple[Expose, ...]
    exposes_meta: str


class BridgeDevicesError(ValueError):
    """The `bridge/devices` document is not what Zigbee2MQTT publishes."""


def _flatten(items: object) -> list[Expose]:
    out: list[Expose] = []
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("features"), list):
            out.extend(_flatten(item["features"]))
            continue
        prop = item.get("property")
        if isinstance(prop, str) and prop:
            unit = item.get("unit")
            out.append(
                Expose(
                    prop,
                    str(item.get("type", "")),
                    _scalar(item.get("value_on")),
                    _scalar(item.get("value_off")),
                    unit if isinstance(unit, str) else "",
                )
            )
    return out


def _scalar(value: object) -> ExposeValue:
    return value if isinstance(value, str | int | float | bool) else None


def compact_exposes(exposes: Sequence[Expose]) -> str:
    """The compact JSON that travels in `meta["exposes"]`."""
    rows = [[e.property, e.type, e.value_on, e.value_off, e.unit] for e in exposes]
    return json.dumps(rows, separators=(",", ":"))


@lru_cache(maxsize=512)
def parse_compact_exposes(text: str) -> Mapping[str, Expose]:
    """Parse `meta["exposes"]` back into property -> `Expose`; raises `ValueError` when malformed."""
    rows = orjson.loads(text)
    if not isinstance(rows, list):
        raise ValueError("exposes must be a JSON list")  # noqa: TRY004 - callers catch ValueError
    out: dict[str, Expose] = {}
    for row in rows:
        if not isinstance(row, list) or len(row) != 5 or not isinstance(row[0], str):  # noqa: PLR2004
            raise ValueError(f"bad exposes row {row!r}")
        out[row[0]] = Expose(
            row[0], str(row[1]), _scalar(row[2]), _scalar(row[3]), str(row[4] or "")
        )
    return out


def parse_bridge_devices(payload: bytes | str) -> dict[str, Z2mDevice]:
    """Index the retained `bridge/devices` array by friendly name (the coordinator is skipped)."""
    try:
        doc = orjson.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BridgeDevicesError(f"bridge/devices is not JSON: {err}") from None
    if not isinstance(doc, list):
        raise BridgeDevicesError("bridge/devices must be a JSON array")
    index: dict[str, Z2mDevice] = {}
    for item in doc:
        if not isinstance(item, dict) or item.get("type") == "Coordinator":
            continue
        name = item.get("friendly_name")
        if not isinstance(name, str) or not name:
            continue
        definition = item.get("definition") if isinstance(item.get("definition"), dict) else {}
        assert isinstance(definition, dict)  # noqa: S101 - narrowed above, for mypy
        exposes = tuple(_flatten(definition.get("exposes")))
        index[name] = Z2mDevice(
            friendly_name=name,
            ieee_address=str(item.get("ieee_address", "")),
            model=str(definition.get("model", "")),
            vendor=str(definition.get("vendor", "")),
            exposes=exposes,
            exposes_meta=compact_exposes(exposes),
        )
    return index


def _split_topic(topic: str, base: str) -> tuple[str, str] | None:
    """Return `(friendly_name, suffix)` with suffix `""` (state) or `availability`; None otherwise."""
    prefix = base + "/"
    if not topic.startswith(prefix):
        return None
    rest = topic[len(prefix) :]
    if not rest or rest == "bridge" or rest.startswith("bridge/"):
        return None
    for suffix in ("/set", "/get"):
        if rest.endswith(suffix) or f"{suffix}/" in rest:
            return None
    if rest.endswith("/availability"):
        return rest[: -len("/availability")], "availability"
    return rest, ""


def frame_from_z2m_message(
    topic: str,
    payload: bytes,
    index: Mapping[str, Z2mDevice],
    received_at: datetime,
    *,
    base_topic: str = BASE_TOPIC,
    source_id: str = "zigbee2mqtt",
) -> RawFrame | None:
    """Make the frame `zigbee2mqtt.generic.exposes` decodes from one MQTT message, or None if it is not one.

    Friendly names may contain `/`; the topic after the base is the name (plus `/availability`).
    Devices missing from `index` still get frames, decoded by their property names alone.
    """
    if not payload:
        return None
    meta = meta_for_topic(topic, index, base_topic=base_topic)
    return None if meta is None else RawFrame(source_id, CODEC_ID, payload, received_at, meta)


def meta_for_topic(
    topic: str, index: Mapping[str, Z2mDevice], *, base_topic: str = BASE_TOPIC
) -> dict[str, str] | None:
    """The frame metadata of messages on `topic` (see `frame_from_z2m_message`), or None.

    It depends on the topic and the index only, so a source may keep it per topic until the index
    changes.
    """
    parts = _split_topic(topic, base_topic)
    if parts is None:
        return None
    name, suffix = parts
    meta = {"device_id": name, "friendly_name": name, "kind": suffix or "state"}
    device = index.get(name)
    if device is not None:
        meta |= {"model": device.model, "exposes": device.exposes_meta}
    return meta


def encode_bridge_devices(
    devices: Sequence[tuple[str, str, str, str, Sequence[Mapping[str, object]]]],
) -> bytes:
    """Build a `bridge/devices` document for simulators.

    Args:
        devices: `(friendly_name, ieee_address, model, vendor, exposes)` per device, with exposes in
            Zigbee2MQTT's own form (dicts with `property`, `type`, `value_on`, ...).
    """
    doc: list[dict[str, object]] = [
        {
            "ieee_address": "0x00124b0000000000",
            "type": "Coordinator",
            "friendly_name": "Coordinator",
            "supported": True,
            "definition": None,
        }
    ]
    for name, ieee, model, vendor, exposes in devices:
        doc.append(
            {
                "ieee_address": ieee,
                "type": "EndDevice",
                "network_address": len(doc),
                "supported": True,
                "friendly_name": name,
                "disabled": False,
                "power_source": "Battery",
                "interview_completed": True,
                "definition": {
                    "source": "native",
                    "model": model,
                    "vendor": vendor,
                    "description": model,
                    "exposes": list(exposes),
                    "options": [],
                    "supports_ota": False,
                },
            }
        )
    return json.dumps(doc, separators=(",", ":")).encode()
