from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.metrics import Metric, Quality
from core.types import RawFrame
from firmware_adapters.codecs.lorawan import dragino_dds75_lb, dragino_ldds75, dragino_lds02
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def frame(hex_payload: str, fport: str | None = "2") -> RawFrame:
    meta = {"device_id": "bin-1"} | ({"fport": fport} if fport else {})
    return RawFrame("t", "x", bytes.fromhex(hex_payload), NOW, meta)


def test_battery_keeps_only_fourteen_bits_and_big_endian_fields() -> None:
    # 0xCCF6 & 0x3FFF = 0x0CF6 = 3318 mV; distance 0x096E = 2414 mm; temperature 0xFF38 = -20.0 C
    result = dragino_ldds75.CODEC.decode(frame("ccf6096e01ff3801"))
    values = {r.metric: r.value for r in result.readings}
    assert values == {
        Metric.BATTERY_V: 3.318,
        Metric.DISTANCE_MM: 2414,
        Metric.TEMPERATURE_C: -20.0,
    }
    assert result.attributes == {"interrupt_flag": 1, "sensor_flag": 1}


def test_missing_probe_distance_is_suspect_with_a_warning() -> None:
    result = dragino_ldds75.CODEC.decode(frame("0cf600000000fa01"))
    distance = next(r for r in result.readings if r.metric is Metric.DISTANCE_MM)
    assert distance.quality is Quality.SUSPECT
    assert result.warnings == ("distance 0: no ultrasonic probe detected",)


def test_frame_without_fport_is_taken_as_the_uplink_port() -> None:
    assert dragino_ldds75.CODEC.decode(frame("0cf6096e00012201", fport=None)).readings


def test_non_numeric_fport_is_malformed() -> None:
    with pytest.raises(DecodeError) as info:
        dragino_ldds75.CODEC.decode(frame("0cf6096e00012201", fport="two"))
    assert info.value.reason is DecodeReason.MALFORMED


def test_dds75_lb_routes_by_port() -> None:
    status = dragino_dds75_lb.decode(frame("27011001ff0d0a", "5"))
    assert status.attributes["sensor_model"] == "DDS75-LB"
    for port in ("3", "6"):
        with pytest.raises(DecodeError) as info:
            dragino_dds75_lb.decode(frame("0d0a05dc0000e601", port))
        assert info.value.reason is DecodeReason.UNSUPPORTED
    with pytest.raises(DecodeError) as info:
        dragino_dds75_lb.decode(frame("0d0a05dc0000e601", "9"))
    assert info.value.reason is DecodeReason.UNKNOWN_PORT


def test_lds02_encoder_builds_the_vendor_layout() -> None:
    payload = dragino_lds02.encode(
        {"battery_v": 2.952, "contact_open": True, "open_count": 37, "last_open_minutes": 3}
    )
    assert payload.hex() == "8b880100002500000300"
    result = dragino_lds02.decode(frame(payload.hex(), "10"))
    assert result.attributes["open_count"] == 37
    with pytest.raises(DecodeError) as info:
        dragino_lds02.decode(frame(payload.hex(), "7"))  # a 10-byte frame is no EDC frame
    assert info.value.reason is DecodeReason.LENGTH


def test_lds02_edc_mode_keeps_battery_door_and_count_like_the_vendor_decoder() -> None:
    # LDS02_Decoder_1.8.2, fPort 7: BatV 2.952, edc_mod OPEN, times 0x00012c = 300.
    result = dragino_lds02.CODEC.decode(frame("8b8800012c", "7"))
    assert {r.metric: r.value for r in result.readings} == {
        Metric.BATTERY_V: 2.952,
        Metric.CONTACT_OPEN: True,
    }
    assert result.attributes == {"edc_count": 300}


def test_dds75_lb_multi_distance_frame_keeps_battery_temperature_and_distances() -> None:
    # DDS75-LB ChirpStack v4 decoder: Bat (0x1d0a & 0x0fff) / 1000 = 3.338, distances from byte 8
    # up to 4 bytes before the end, then interrupt flag, temperature 0x00e6 / 10, sensor flag.
    result = dragino_dds75_lb.CODEC.decode(frame("1d0a000000000000" + "05dc05e6" + "0000e601"))
    assert {r.metric: r.value for r in result.readings} == {
        Metric.BATTERY_V: 3.338,
        Metric.DISTANCE_MM: 1510,
        Metric.TEMPERATURE_C: 23.0,
    }
    assert result.attributes == {
        "distances_mm": "1500,1510",
        "distance_count": 2,
        "interrupt_flag": 0,
        "sensor_flag": 1,
    }


def test_dds75_lb_multi_distance_reads_at_most_twenty_distances() -> None:
    samples = "".join(f"{1000 + i:04x}" for i in range(25))
    result = dragino_dds75_lb.CODEC.decode(frame("1d0a000000000000" + samples + "0000e601"))
    assert result.attributes["distance_count"] == 20
    assert {r.metric: r.value for r in result.readings}[Metric.DISTANCE_MM] == 1019


@pytest.mark.parametrize(
    "values",
    [
        {"distance_mm": 1},
        {"battery_v": 3.3, "distance_mm": -1, "temperature_c": 0},
        {"battery_v": 3.3, "distance_mm": 1, "temperature_c": 5000},
    ],
)
def test_encoder_refuses_values_that_do_not_fit(values: dict[str, object]) -> None:
    with pytest.raises(EncodeError):
        dragino_ldds75.CODEC.encode(values)
