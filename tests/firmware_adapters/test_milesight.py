from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.metrics import Metric, Quality
from core.types import RawFrame
from firmware_adapters.codecs.lorawan import milesight_em400_udl, milesight_ws301
from firmware_adapters.errors import DecodeError, DecodeIssue, DecodeReason, EncodeError, IssueKind
from firmware_adapters.fields import Decoded, FieldError, Number, s16le, u16le
from firmware_adapters.registry import get_codec

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def decode(
    codec_id: str, hex_payload: str, **meta: str
) -> tuple[dict[Metric, float | bool], dict[str, object]]:
    frame = RawFrame("t", codec_id, bytes.fromhex(hex_payload), NOW, {"device_id": "d", **meta})
    result = get_codec(codec_id).decode(frame)
    return {r.metric: r.value for r in result.readings}, dict(result.attributes)


def test_attribute_channels_render_like_the_vendor_decoder() -> None:
    # FF09 0140 -> v1.4, FF0A 0114 -> v1.14, FFFF 0103 -> v1.3, FF0F 02 -> Class C, FFFE/FF0B ignore the byte
    _, attributes = decode(
        "lorawan.milesight.em310_udl", "ff090140ff0a0114ffff0103ff0f02fffe07ff0b09"
    )
    assert attributes == {
        "hardware_version": "v1.4",
        "firmware_version": "v1.14",
        "tsl_version": "v1.3",
        "lorawan_class": "Class C",
        "reset_event": "reset",
        "device_status": "on",
    }


def test_unknown_channel_after_good_ones_is_an_error_not_a_silent_stop() -> None:
    frame = RawFrame("t", "x", bytes.fromhex("01755c03824408" + "7701"), NOW)
    with pytest.raises(DecodeError) as info:
        get_codec("lorawan.milesight.em310_udl").decode(frame)
    assert info.value.reason is DecodeReason.UNKNOWN_TYPE
    assert "77 01 at byte 7" in info.value.detail
    assert info.value.raw_hex == "01755c038244087701"


def test_out_of_range_value_is_kept_and_flagged() -> None:
    frame = RawFrame("t", "x", bytes.fromhex("0175c8"), NOW)  # battery 200 %
    (reading,) = get_codec("lorawan.milesight.em310_udl").decode(frame).readings
    assert reading.value == 200
    assert reading.quality is Quality.OUT_OF_RANGE


def test_readings_carry_device_time_and_codec() -> None:
    frame = RawFrame("t", "x", bytes.fromhex("017564"), NOW, {"device_id": "bin-7"})
    (reading,) = get_codec("lorawan.milesight.em310_udl").decode(frame).readings
    assert (reading.device_id, reading.ts, reading.codec_id) == (
        "bin-7",
        NOW,
        "lorawan.milesight.em310_udl",
    )


def test_encoder_prefers_the_alarm_channel_when_the_alarm_is_given() -> None:
    plain = milesight_em400_udl.CODEC.encode({"temperature_c": 23.2, "distance_mm": 1601})
    assert plain == bytes.fromhex("0367e800" + "04824106")
    alarm = milesight_em400_udl.CODEC.encode(
        {
            "temperature_c": 23.2,
            "temperature_alarm": "threshold_alarm",
            "distance_mm": 1601,
            "distance_alarm": "threshold_alarm",
        }
    )
    assert alarm == bytes.fromhex("8367e80001" + "8482410601")  # the README example


def test_ws301_flags_encode_from_metrics_and_serial_number() -> None:
    payload = milesight_ws301.CODEC.encode(
        {"battery_pct": 100, "contact_open": True, "tamper": False, "sn": "6136c1987654"}
    )
    assert payload == bytes.fromhex("ff086136c1987654" + "017564" + "030001" + "040000")
    readings, attributes = decode("lorawan.milesight.ws301", payload.hex())
    assert readings == {Metric.BATTERY_PCT: 100, Metric.CONTACT_OPEN: True, Metric.TAMPER: False}
    assert attributes["sn"] == "6136c1987654"


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"battery_pct": 256},
        {"battery_pct": "full"},
        {"position": "sideways"},
        {"battery_pct": True},
    ],
)
def test_encoder_refuses_what_the_wire_cannot_carry(values: dict[str, object]) -> None:
    with pytest.raises(EncodeError):
        get_codec("lorawan.milesight.em310_udl").encode(values)


def test_field_builders_scale_and_sign() -> None:
    out = Decoded()
    s16le(Metric.TEMPERATURE_C, 0.1).read(b"\xc9\xff", 0, out)
    u16le(Metric.DISTANCE_MM).read(b"\x00\x44\x08", 1, out)
    assert out.values == [(Metric.TEMPERATURE_C, -5.5), (Metric.DISTANCE_MM, 2116)]
    assert s16le(Metric.TEMPERATURE_C, 0.1).write({"temperature_c": -5.5}) == b"\xc9\xff"
    with pytest.raises(EncodeError, match="does not fit"):
        Number("x", ">H").write({"x": -1})


def test_field_error_carries_a_reason() -> None:
    err = FieldError(DecodeReason.RANGE, "bad")
    assert (err.reason, err.detail) == (DecodeReason.RANGE, "bad")


def test_an_undefined_daylight_byte_keeps_the_pir_trigger_of_the_same_frame() -> None:
    frame = RawFrame("t", "x", bytes.fromhex("017510030001040005"), NOW, {"device_id": "d"})
    result = get_codec("lorawan.milesight.ws202").decode(frame)
    assert {r.metric: r.value for r in result.readings} == {
        Metric.BATTERY_PCT: 16,
        Metric.OCCUPANCY: True,
    }
    assert result.attributes == {"pir": "trigger", "daylight": "unknown"}
    (issue,) = result.warnings
    assert isinstance(issue, DecodeIssue)
    assert issue.kind is IssueKind.UNDEFINED_VALUE
    assert issue == "undefined_value: daylight: undefined value 5"


def test_decoded_never_builds_a_non_finite_reading_or_attribute() -> None:
    out = Decoded()
    out.put(Metric.TEMPERATURE_C, float("nan"))
    out.put(Metric.BATTERY_PCT, 80)
    out.values.append((Metric.DISTANCE_MM, float("inf")))
    out.put("longitude", float("-inf"))
    out.put("latitude", 30.5)
    frame = RawFrame("t", "x", b"", NOW, {"device_id": "d"})
    result = out.result(frame, "lorawan.test.x")
    assert [(r.metric, r.value) for r in result.readings] == [(Metric.BATTERY_PCT, 80)]
    assert result.attributes == {"latitude": 30.5}
    assert [w.kind for w in result.warnings if isinstance(w, DecodeIssue)] == [
        IssueKind.NON_FINITE
    ] * 3
