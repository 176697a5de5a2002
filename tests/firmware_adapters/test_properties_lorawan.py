"""Round trips through every LoRaWAN codec's encoder, and hostile bytes that must only raise DecodeError."""

# ruff: noqa: PLR0917 - hypothesis passes each drawn value as an argument

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.types import DecodeResult, RawFrame
from firmware_adapters.chirpstack import UpEventEncoder, frame_from_up_event, parse_up_event
from firmware_adapters.codec import Codec
from firmware_adapters.codecs.lorawan import milesight_gs524n
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.registry import CODECS, get_codec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LORAWAN = sorted(c for c in CODECS if c.startswith("lorawan."))
PORTS = {"milesight": "85", "dragino": "2", "dingtek": "3"}

u8 = st.integers(0, 255)
pct = st.integers(0, 100)
flag = st.booleans()


def tenths(low: int, high: int) -> st.SearchStrategy[float]:
    return st.integers(low, high).map(lambda v: v / 10)


def hundredths(low: int, high: int) -> st.SearchStrategy[float]:
    return st.integers(low, high).map(lambda v: v / 100)


def port_of(codec_id: str) -> str:
    vendor = codec_id.split(".")[1]
    return "10" if codec_id.endswith("lds02") else PORTS[vendor]


def decode(codec_id: str, payload: bytes, fport: str | None = None) -> DecodeResult:
    meta = {"device_id": "dev", "fport": fport or port_of(codec_id)}
    return get_codec(codec_id).decode(RawFrame("prop", codec_id, payload, NOW, meta))


def assert_decodes_to(
    codec_id: str, values: Mapping[str, Any], expected: Mapping[str, Any]
) -> None:
    """Encode `values`, decode, and find every expected metric/attribute value."""
    codec = get_codec(codec_id)
    result = decode(codec_id, codec.encode(values))
    readings = {r.metric.value: r.value for r in result.readings}
    for key, want in expected.items():
        got = readings[key] if key in readings else result.attributes[key]
        if isinstance(want, bool) or isinstance(got, bool) or isinstance(want, str):
            assert got == want, (key, got, want)
        else:
            assert math.isclose(float(got), want, abs_tol=1e-6), (key, got, want)


# One strategy of valid values per codec; expected = the values themselves unless stated.
MILESIGHT_EM = {
    "lorawan.milesight.em310_udl": st.fixed_dictionaries(
        {
            "battery_pct": pct,
            "distance_mm": st.integers(0, 65535),
            "position": st.sampled_from(["normal", "tilt"]),
        }
    ),
    "lorawan.milesight.em400_udl": st.fixed_dictionaries(
        {
            "battery_pct": pct,
            "temperature_c": tenths(-32768, 32767),
            "distance_mm": st.integers(0, 65535),
            "position": st.sampled_from(["normal", "tilt"]),
        },
        optional={
            "temperature_alarm": st.sampled_from(["threshold_alarm", "threshold_alarm_release"]),
            "distance_alarm": st.sampled_from(["threshold_alarm", "threshold_alarm_release"]),
        },
    ),
    "lorawan.milesight.ws301": st.fixed_dictionaries(
        {
            "battery_pct": pct,
            "contact_open": flag,
            "tamper": flag,
            "sn": st.binary(min_size=6, max_size=6).map(bytes.hex),
        }
    ),
    "lorawan.milesight.ws202": st.fixed_dictionaries(
        {"battery_pct": pct, "occupancy": flag, "daylight": st.sampled_from(["dark", "light"])}
    ),
}
MILESIGHT_EM["lorawan.milesight.em400_mud"] = MILESIGHT_EM["lorawan.milesight.em400_udl"]


@pytest.mark.parametrize("codec_id", sorted(MILESIGHT_EM))
@SETTINGS
@given(data=st.data())
def test_milesight_tlv_round_trip(codec_id: str, data: st.DataObject) -> None:
    values = data.draw(MILESIGHT_EM[codec_id])
    expected = dict(values)
    if "position" in values:
        expected["tilt_alarm"] = values["position"] == "tilt"
    assert_decodes_to(codec_id, values, expected)


@SETTINGS
@given(
    battery=pct,
    distance=st.integers(0, 65535),
    alarm=st.sampled_from(["normal", "threshold_alarm", "mutation_alarm"]),
    mutation=tenths(0, 65535),
    tenths_mm=tenths(0, 65535),
    history=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 65535)), max_size=4),
)
def test_em500_round_trip_with_alarm_channel_and_history(
    battery: int,
    distance: int,
    alarm: str,
    mutation: float,
    tenths_mm: float,
    history: list[tuple[int, int]],
) -> None:
    assert_decodes_to(
        "lorawan.milesight.em500_udl",
        {"battery_pct": battery, "distance_mm": distance},
        {"battery_pct": battery, "distance_mm": distance},
    )
    values = {
        "distance_mm": tenths_mm,
        "distance_mutation_mm": mutation,
        "distance_alarm": alarm,
        "history": history,
    }
    result = decode(
        "lorawan.milesight.em500_udl", get_codec("lorawan.milesight.em500_udl").encode(values)
    )
    assert result.attributes["distance_alarm"] == alarm
    assert math.isclose(float(result.attributes["distance_mutation_mm"]), mutation, abs_tol=1e-6)
    stamped = sorted((r.ts, r.value) for r in result.readings if r.ts != NOW)
    assert stamped == sorted((datetime.fromtimestamp(t, UTC), d) for t, d in history)


@pytest.mark.parametrize(
    ("codec_id", "limit"),
    [("lorawan.milesight.em310_tilt", 32767), ("lorawan.milesight.em320_tilt", 16383)],
)
@SETTINGS
@given(data=st.data())
def test_tilt_round_trip(codec_id: str, limit: int, data: st.DataObject) -> None:
    angles = {f"tilt_{a}_deg": data.draw(hundredths(-limit - 1, limit)) for a in "xyz"}
    flags = {f"threshold_{a}": data.draw(flag) for a in "xyz"}
    values = {"battery_pct": data.draw(pct), **angles, **flags}
    assert_decodes_to(codec_id, values, {**values, "tilt_alarm": any(flags.values())})


@SETTINGS
@given(
    event=st.sampled_from(sorted(milesight_gs524n.EVENT_CODES)),
    battery=pct,
    smoke=pct,
    temperature=st.integers(-128, 127),
)
def test_gs524n_round_trip(event: str, battery: int, smoke: int, temperature: int) -> None:
    values = {
        "event": event,
        "battery_pct": battery,
        "smoke_pct": smoke,
        "temperature_c": temperature,
    }
    expected: dict[str, Any] = dict(values)
    for metric, value in milesight_gs524n.EVENTS[milesight_gs524n.EVENT_CODES[event]][1].items():
        expected[metric.value] = value
    assert_decodes_to("lorawan.milesight.gs524n", values, expected)


@pytest.mark.parametrize(
    "codec_id", ["lorawan.dragino.ldds75", "lorawan.dragino.ldds20", "lorawan.dragino.dds75_lb"]
)
@SETTINGS
@given(
    battery_mv=st.integers(0, 4095),
    distance=st.integers(0, 65535),
    temperature=tenths(-32768, 32767),
    interrupt=u8,
    sensor=u8,
)
def test_dragino_distance_round_trip(
    codec_id: str, battery_mv: int, distance: int, temperature: float, interrupt: int, sensor: int
) -> None:
    values = {
        "battery_v": battery_mv / 1000,
        "distance_mm": distance,
        "temperature_c": temperature,
        "interrupt_flag": interrupt,
        "sensor_flag": sensor,
    }
    assert_decodes_to(codec_id, values, values)


@SETTINGS
@given(
    battery_mv=st.integers(0, 65535),
    band=u8,
    sub_band=st.one_of(st.just("NULL"), st.integers(0, 254)),
    version=st.tuples(st.integers(0, 15), st.integers(0, 15), st.integers(0, 15)),
)
def test_dds75_lb_status_round_trip(
    battery_mv: int, band: int, sub_band: object, version: tuple[int, int, int]
) -> None:
    values = {
        "status": True,
        "battery_v": battery_mv / 1000,
        "frequency_band": band,
        "sub_band": sub_band,
        "firmware_version": ".".join(map(str, version)),
    }
    payload = get_codec("lorawan.dragino.dds75_lb").encode(values)
    result = decode("lorawan.dragino.dds75_lb", payload, "5")
    assert result.attributes["firmware_version"] == values["firmware_version"]
    assert result.attributes["sub_band"] == sub_band
    assert result.attributes["frequency_band"] == band
    assert [r.value for r in result.readings] == [battery_mv / 1000]


@SETTINGS
@given(
    mode=st.sampled_from([1, 2, 3]),
    battery_mv=st.integers(0, 0x3FFF),
    state=flag,
    alarm=flag,
    count=st.integers(0, 2**24 - 1),
    minutes=st.integers(0, 2**24 - 1),
)
def test_lds02_round_trip(
    mode: int, battery_mv: int, state: bool, alarm: bool, count: int, minutes: int
) -> None:
    what, metric = ("leak", "water_leak") if mode == 2 else ("open", "contact_open")
    values = {
        "mode": mode,
        "battery_v": battery_mv / 1000,
        metric: state,
        "alarm": alarm,
        f"{what}_count": count,
        f"last_{what}_minutes": minutes,
    }
    assert_decodes_to("lorawan.dragino.lds02", values, values)


@pytest.mark.parametrize(
    ("codec_id", "flags"),
    [
        ("lorawan.dingtek.df702", ("full", "fire_alarm", "tilt_alarm", "low_battery")),
        ("lorawan.dingtek.dc410", ("full", "cover_moved", "low_battery")),
    ],
)
@SETTINGS
@given(data=st.data())
def test_dingtek_round_trip(codec_id: str, flags: tuple[str, ...], data: st.DataObject) -> None:
    angle = data.draw(st.integers(-255, 255))
    values: dict[str, Any] = {
        "distance_mm": data.draw(st.integers(0, 65535)),
        "temperature_c": data.draw(st.integers(-128, 127)),
        "angle_deg": angle,
        "frame_type": data.draw(st.sampled_from([1, 2])),
        "frame_counter": data.draw(st.integers(0, 65535)),
        **{f: data.draw(flag) for f in flags},
    }
    if data.draw(flag):
        values["longitude"] = data.draw(st.floats(-180, 180, width=32))
        values["latitude"] = data.draw(st.floats(-90, 90, width=32))
    expected = {k: v for k, v in values.items() if k not in {"longitude", "latitude"}} | {
        "tilt_deg": abs(angle)
    }
    assert_decodes_to(codec_id, values, expected)
    if "longitude" in values:
        result = decode(codec_id, get_codec(codec_id).encode(values))
        assert math.isclose(
            float(result.attributes["longitude"]), values["longitude"], abs_tol=1e-5
        )
        assert math.isclose(float(result.attributes["latitude"]), values["latitude"], abs_tol=1e-5)


@SETTINGS
@given(data=st.data())
def test_dingtek_parameter_round_trip(data: st.DataObject) -> None:
    names = (
        "upload_interval_h",
        "detection_interval_min",
        "full_threshold_cm",
        "fire_threshold_c",
        "tilt_threshold_deg",
    )
    values: dict[str, Any] = {n: data.draw(u8) for n in names}
    values |= {
        "parameters": True,
        "tilt_alarm_enabled": data.draw(flag),
        "range_mm": data.draw(st.sampled_from([2000, 5000])),
    }
    expected = {k: v for k, v in values.items() if k != "parameters"}
    assert_decodes_to("lorawan.dingtek.df702", values, expected)


def _only_decode_errors(codec: Codec, payload: bytes, fport: str | None) -> None:
    meta = {"device_id": "dev"} | ({"fport": fport} if fport is not None else {})
    error: DecodeError | None = None
    try:
        result = codec.decode(RawFrame("fuzz", codec.id, payload, NOW, meta))
    except DecodeError as err:
        error = err
    else:
        assert isinstance(result, DecodeResult)
    if error is not None:
        assert isinstance(error.reason, DecodeReason)
        assert error.codec_id == codec.id


@pytest.mark.parametrize("codec_id", LORAWAN)
@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=40), use_port=st.booleans())
def test_random_bytes_only_raise_decode_errors(
    codec_id: str, payload: bytes, use_port: bool
) -> None:
    _only_decode_errors(get_codec(codec_id), payload, port_of(codec_id) if use_port else None)


# A known-good payload per codec (from the vectors), mutated by hypothesis.
GOOD = {
    "lorawan.milesight.em310_udl": "01755c03824408040001",
    "lorawan.milesight.em400_udl": "01755c0367010104824408050001",
    "lorawan.milesight.em400_mud": "8367e800018482410601",
    "lorawan.milesight.em500_udl": "01756403821e0083e9b80b64000220ce0000566a2c01",
    "lorawan.milesight.em310_tilt": "03cf00000000282307",
    "lorawan.milesight.em320_tilt": "01756403d4000001005046",
    "lorawan.milesight.gs524n": "221e64001c40",
    "lorawan.milesight.ws301": "017564030001040001ff086136c1987654",
    "lorawan.milesight.ws202": "017510030001040000",
    "lorawan.dragino.ldds75": "0cf6096e00012201",
    "lorawan.dragino.ldds20": "0cf6096e00012201",
    "lorawan.dragino.dds75_lb": "0d0a05dc0000e601",
    "lorawan.dragino.lds02": "8b880100002500000300",
    "lorawan.dingtek.df702": "800001011907d001cd03e942ef272042190000000000000081",
    "lorawan.dingtek.dc410": "800001021106a400160100000000010081",
}


def test_every_lorawan_codec_has_a_known_good_payload() -> None:
    assert sorted(GOOD) == LORAWAN
    for codec_id, hex_payload in GOOD.items():
        decode(codec_id, bytes.fromhex(hex_payload))


@pytest.mark.parametrize("codec_id", LORAWAN)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_frames_only_raise_decode_errors(codec_id: str, data: st.DataObject) -> None:
    buf = bytearray(bytes.fromhex(GOOD[codec_id]))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            buf.insert(at, data.draw(u8))
        elif op == "delete" and buf:
            del buf[at]
        else:
            del buf[at:]
    _only_decode_errors(get_codec(codec_id), bytes(buf), port_of(codec_id))


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=64),
    port=st.integers(0, 255),
    drop=st.sets(st.sampled_from(["fCnt", "fPort", "rxInfo", "time", "txInfo"])),
)
def test_chirpstack_events_round_trip_and_survive_missing_fields(
    data: bytes, port: int, drop: set[str]
) -> None:
    encoder = UpEventEncoder("a84041000181c8f1")
    doc = json.loads(encoder.encode(data, port, NOW))
    for key in drop:
        doc.pop(key)
    event = parse_up_event(json.dumps(doc))
    assert event.data == data
    assert event.f_port == (0 if "fPort" in drop else port)
    frame = frame_from_up_event(event, "lorawan.milesight.em310_udl", NOW)
    assert frame.payload == data


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(st.binary(max_size=80), st.text(max_size=80).map(str.encode)),
    cut=st.integers(0, 400),
)
def test_garbage_and_truncated_events_only_raise_decode_errors(text: bytes, cut: int) -> None:
    for payload in (text, UpEventEncoder("a84041000181c8f1").encode(b"\x01", 2, NOW)[:cut]):
        reason = DecodeReason.MALFORMED
        try:
            parse_up_event(payload)
        except DecodeError as err:
            reason = err.reason
        assert reason is DecodeReason.MALFORMED
