from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.metrics import Metric
from core.types import RawFrame
from firmware_adapters.codecs.zigbee2mqtt import generic_exposes
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.zigbee2mqtt_exposes import (
    BridgeDevicesError,
    encode_bridge_devices,
    frame_from_z2m_message,
    parse_bridge_devices,
    parse_compact_exposes,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# zigbee-herdsman-converters@26.112.0 exposes (vectors/zigbee2mqtt_exposes.examples.jsonl), trimmed.
TS0203: list[dict[str, object]] = [
    {
        "name": "contact",
        "type": "binary",
        "property": "contact",
        "value_on": False,
        "value_off": True,
        "access": 1,
    },
    {
        "name": "battery",
        "type": "numeric",
        "property": "battery",
        "unit": "%",
        "value_min": 0,
        "value_max": 100,
    },
    {"name": "voltage", "type": "numeric", "property": "voltage", "unit": "mV"},
    {
        "name": "tamper",
        "type": "binary",
        "property": "tamper",
        "value_on": True,
        "value_off": False,
    },
]
HS1SA: list[dict[str, object]] = [
    {"name": "smoke", "type": "binary", "property": "smoke", "value_on": True, "value_off": False},
    {
        "name": "battery_low",
        "type": "binary",
        "property": "battery_low",
        "value_on": True,
        "value_off": False,
    },
]
# A composite expose with string states, as some devices publish.
SIREN: list[dict[str, object]] = [
    {
        "type": "composite",
        "name": "alarm",
        "features": [
            {
                "name": "smoke",
                "type": "binary",
                "property": "smoke",
                "value_on": "ON",
                "value_off": "OFF",
            }
        ],
    }
]
DEVICES = encode_bridge_devices(
    [
        ("garden/gate", "0xa4c1380000000001", "TS0203", "Tuya", TS0203),
        ("kitchen_smoke", "0x00158d0000000002", "HS3SA/HS1SA", "Heiman", HS1SA),
        ("hall_siren", "0x00158d0000000003", "SIREN-X", "Acme", SIREN),
    ]
)
INDEX = parse_bridge_devices(DEVICES)


def decode_message(topic: str, payload: bytes | str) -> dict[Metric, float | bool]:
    raw = payload.encode() if isinstance(payload, str) else payload
    frame = frame_from_z2m_message(topic, raw, INDEX, NOW)
    assert frame is not None
    return {r.metric: r.value for r in generic_exposes.decode(frame).readings}


def test_bridge_devices_index_skips_the_coordinator_and_flattens_composites() -> None:
    assert sorted(INDEX) == ["garden/gate", "hall_siren", "kitchen_smoke"]
    gate = INDEX["garden/gate"]
    assert (gate.model, gate.vendor, gate.ieee_address) == ("TS0203", "Tuya", "0xa4c1380000000001")
    assert parse_compact_exposes(gate.exposes_meta)["contact"].value_on is False
    assert [e.property for e in INDEX["hall_siren"].exposes] == ["smoke"]


@pytest.mark.parametrize("payload", [b"{", b"{}", b'"x"'])
def test_bridge_devices_that_are_not_an_array_are_refused(payload: bytes) -> None:
    with pytest.raises(BridgeDevicesError):
        parse_bridge_devices(payload)


def test_contact_false_means_open_for_a_name_with_a_slash() -> None:
    assert decode_message(
        "zigbee2mqtt/garden/gate", '{"contact":false,"battery":80,"voltage":2950}'
    ) == {
        Metric.CONTACT_OPEN: True,
        Metric.BATTERY_PCT: 80,
        Metric.BATTERY_V: 2.95,
    }
    assert decode_message("zigbee2mqtt/garden/gate", '{"contact":true}') == {
        Metric.CONTACT_OPEN: False
    }


def test_string_valued_binary_exposes_use_value_on() -> None:
    assert decode_message("zigbee2mqtt/hall_siren", '{"smoke":"ON"}') == {Metric.SMOKE: True}
    assert decode_message("zigbee2mqtt/hall_siren", '{"smoke":"OFF"}') == {Metric.SMOKE: False}


def test_availability_in_both_payload_styles() -> None:
    assert decode_message("zigbee2mqtt/garden/gate/availability", '{"state":"online"}') == {
        Metric.ONLINE: True
    }
    assert decode_message("zigbee2mqtt/kitchen_smoke/availability", "offline") == {
        Metric.ONLINE: False
    }


def test_unknown_device_still_decodes_by_property_names() -> None:
    frame = frame_from_z2m_message("zigbee2mqtt/0x00158d00aa", b'{"water_leak":true}', INDEX, NOW)
    assert frame is not None
    assert "model" not in frame.meta
    assert frame.device_id == "0x00158d00aa"
    assert {r.metric: r.value for r in generic_exposes.decode(frame).readings} == {
        Metric.WATER_LEAK: True
    }


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("zigbee2mqtt/bridge/devices", DEVICES),
        ("zigbee2mqtt/bridge/state", b'{"state":"online"}'),
        ("zigbee2mqtt/kitchen_smoke/set", b'{"test":true}'),
        ("zigbee2mqtt/kitchen_smoke/get", b'{"state":""}'),
        ("zigbee2mqtt/kitchen_smoke/availability", b""),
        ("other/kitchen_smoke", b"{}"),
    ],
)
def test_messages_that_are_not_device_frames(topic: str, payload: bytes) -> None:
    assert frame_from_z2m_message(topic, payload, INDEX, NOW) is None


def test_wrong_types_warn_and_nulls_are_skipped() -> None:
    frame = frame_from_z2m_message(
        "zigbee2mqtt/kitchen_smoke",
        b'{"smoke":"maybe","battery":"full","battery_low":null,"linkquality":40}',
        INDEX,
        NOW,
    )
    assert frame is not None
    result = generic_exposes.decode(frame)
    assert result.readings == ()
    assert result.warnings == (
        "smoke: unexpected value 'maybe'",
        "battery: unexpected value 'full'",
    )
    assert result.attributes == {"linkquality": 40, "model": "HS3SA/HS1SA"}


def test_bad_exposes_metadata_is_a_decode_error() -> None:
    frame = RawFrame("t", "x", b'{"smoke":true}', NOW, {"kind": "state", "exposes": "[[1]]"})
    with pytest.raises(DecodeError) as info:
        generic_exposes.decode(frame)
    assert info.value.reason is DecodeReason.MALFORMED


STATE = st.fixed_dictionaries(
    {},
    optional={
        **{
            m: st.booleans()
            for m in (
                "smoke",
                "water_leak",
                "contact_open",
                "occupancy",
                "vibration",
                "tamper",
                "low_battery",
                "self_test",
            )
        },
        "battery_pct": st.integers(0, 100),
        "battery_v": st.integers(0, 5000).map(lambda mv: mv / 1000),
        "temperature_c": st.integers(-400, 800).map(lambda t: t / 10),
        "humidity_pct": st.integers(0, 1000).map(lambda h: h / 10),
        "tilt_x_deg": st.integers(-90, 90),
        "linkquality": st.integers(0, 255),
    },
)


@settings(max_examples=200, deadline=None)
@given(values=STATE, with_exposes=st.booleans())
def test_state_round_trip(values: dict[str, Any], with_exposes: bool) -> None:
    meta = {"kind": "state"} | (
        {"exposes": INDEX["garden/gate"].exposes_meta} if with_exposes else {}
    )
    result = generic_exposes.decode(RawFrame("t", "x", generic_exposes.encode(values), NOW, meta))
    decoded: dict[str, Any] = {r.metric.value: r.value for r in result.readings} | dict(
        result.attributes
    )
    assert decoded.keys() == values.keys()
    for key, value in values.items():
        assert decoded[key] == pytest.approx(value, abs=1e-6)
        assert type(decoded[key]) is bool or not isinstance(value, bool)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.one_of(
        st.binary(max_size=60),
        st.from_regex(r'\{"[a-z_]{1,12}":.{0,12}\}', fullmatch=True).map(str.encode),
    ),
    kind=st.sampled_from(["state", "availability"]),
)
def test_garbage_only_raises_decode_errors(payload: bytes, kind: str) -> None:
    frame = RawFrame(
        "t", "x", payload, NOW, {"kind": kind, "exposes": INDEX["kitchen_smoke"].exposes_meta}
    )
    reason: DecodeReason | None = None
    try:
        generic_exposes.decode(frame)
    except DecodeError as err:
        reason = err.reason
    assert reason in {None, DecodeReason.MALFORMED}


def test_encoder_builds_availability_and_z2m_keys() -> None:
    assert json.loads(generic_exposes.encode({"online": False})) == {"state": "offline"}
    assert json.loads(generic_exposes.encode({"contact_open": True, "battery_v": 2.95})) == {
        "contact": False,
        "voltage": 2950,
    }
