from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.metrics import Metric
from core.types import RawFrame
from firmware_adapters.codecs.lorawan import dingtek_dc410, dingtek_df702
from firmware_adapters.errors import DecodeError, DecodeIssue, DecodeReason, IssueKind

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def frame(payload: bytes) -> RawFrame:
    return RawFrame("t", "x", payload, NOW, {"device_id": "bin-1", "fport": "3"})


def test_angle_sign_byte_is_honoured_unlike_the_ttn_decoder() -> None:
    positive = dingtek_df702.encode({"distance_mm": 900, "temperature_c": 20, "angle_deg": 7})
    negative = dingtek_df702.encode({"distance_mm": 900, "temperature_c": 20, "angle_deg": -7})
    assert positive[9:11] == b"\x00\x07"
    assert negative[9:11] == b"\x01\x07"
    assert dingtek_df702.decode(frame(positive)).attributes["angle_deg"] == 7
    assert dingtek_df702.decode(frame(negative)).attributes["angle_deg"] == -7
    tilt = [
        r.value
        for r in dingtek_df702.decode(frame(negative)).readings
        if r.metric is Metric.TILT_DEG
    ]
    assert tilt == [7]


def test_temperature_is_signed() -> None:
    payload = dingtek_df702.encode({"distance_mm": 900, "temperature_c": -12, "tilt_deg": 0})
    temps = [
        r.value
        for r in dingtek_df702.decode(frame(payload)).readings
        if r.metric is Metric.TEMPERATURE_C
    ]
    assert temps == [-12]


def test_each_model_maps_its_own_nibbles() -> None:
    payload = bytes.fromhex("800001021106a400160000100100000081")  # A high=1, B low=1
    df702 = {r.metric: r.value for r in dingtek_df702.decode(frame(payload)).readings}
    dc410 = {r.metric: r.value for r in dingtek_dc410.decode(frame(payload)).readings}
    assert df702[Metric.FULL] is True
    assert df702[Metric.LOW_BATTERY] is True
    assert df702[Metric.FIRE_ALARM] is False
    assert df702[Metric.TILT_ALARM] is False
    assert dc410[Metric.FULL] is True
    assert dc410[Metric.LOW_BATTERY] is True
    assert dc410[Metric.COVER_MOVED] is False
    assert Metric.FIRE_ALARM not in dc410


def test_cover_motion_is_the_high_nibble_of_the_second_flag_byte() -> None:
    payload = dingtek_dc410.encode(
        {
            "distance_mm": 1700,
            "temperature_c": 22,
            "tilt_deg": 40,
            "cover_moved": True,
            "frame_counter": 9,
        }
    )
    result = dingtek_dc410.decode(frame(payload))
    assert payload[12] == 0x10
    assert {r.metric: r.value for r in result.readings}[Metric.COVER_MOVED] is True
    assert result.attributes["frame_counter"] == 9


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("800001011107d00019000000000000008181", DecodeReason.LENGTH),  # 18 bytes, length byte 17
        ("800001011907d000190000000000000081", DecodeReason.LENGTH),  # length byte says GPS frame
        ("810001011107d000190000000000000081", DecodeReason.MALFORMED),
        ("800001011107d002190000000000000081", DecodeReason.LENGTH),  # gps flag 2
        ("800001031107d000190000000000000081", DecodeReason.LENGTH),  # short parameter frame
    ],
)
def test_structural_errors(payload: str, reason: DecodeReason) -> None:
    with pytest.raises(DecodeError) as info:
        dingtek_df702.decode(frame(bytes.fromhex(payload)))
    assert info.value.reason is reason


def test_non_finite_gps_floats_are_dropped_and_the_rest_decodes() -> None:
    payload = dingtek_df702.encode(
        {"distance_mm": 900, "temperature_c": 20, "tilt_deg": 3, "longitude": 1.0, "latitude": 2.0}
    )
    gps = bytes.fromhex("0000c07f" + "0000807f")  # NaN longitude, +inf latitude (f32 LE)
    hostile = payload[:8] + gps + payload[16:]
    result = dingtek_df702.CODEC.decode(frame(hostile))
    assert "longitude" not in result.attributes
    assert "latitude" not in result.attributes
    assert {r.metric: r.value for r in result.readings}[Metric.DISTANCE_MM] == 900
    assert sorted(w.kind for w in result.warnings if isinstance(w, DecodeIssue)) == [
        IssueKind.NON_FINITE,
        IssueKind.NON_FINITE,
    ]


def test_a_flag_nibble_outside_0_and_1_drops_only_that_flag() -> None:
    payload = bytearray(
        dingtek_df702.encode(
            {"distance_mm": 900, "temperature_c": 20, "tilt_deg": 0, "fire_alarm": True}
        )
    )
    payload[11] = 0x21  # full nibble 2, fire nibble 1
    result = dingtek_df702.CODEC.decode(frame(bytes(payload)))
    values = {r.metric: r.value for r in result.readings}
    assert Metric.FULL not in values
    assert values[Metric.FIRE_ALARM] is True
    assert [w.kind for w in result.warnings if isinstance(w, DecodeIssue)] == [
        IssueKind.UNDEFINED_VALUE
    ]
