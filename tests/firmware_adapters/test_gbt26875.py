"""GB/T 26875.3-2011: frame layer, information objects, readings and the confirm reply."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.metrics import Metric
from core.types import RawFrame
from firmware_adapters.codecs.serial.gbt26875_3 import CODEC, confirm_reply, decode, deny_reply
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.gbt26875.frame import Command, build_frame, checksum, parse_frame
from firmware_adapters.gbt26875.objects import InfoObject, encode_unit

VENDOR_FRAME = bytes.fromhex(
    "404000000101180d11160a140000000000000605040302013000020201010300d90006000200"
    "a3c1c7f8a3b1b2e3dfc8b2b8d7dfc0c8000000000000000000000000000000301213010814682323"
)
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)
AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def frame(payload: bytes, **meta: str) -> RawFrame:
    return RawFrame("panel", CODEC.id, payload, RECEIVED, {"device_id": "p1", **meta})


def values(payload: bytes, **meta: str) -> dict[tuple[str, str], float | bool]:
    return {(r.device_id, r.metric.value): r.value for r in decode(frame(payload, **meta)).readings}


def test_vendor_frame_header_fields() -> None:
    parsed = parse_frame(VENDOR_FRAME)
    assert parsed.serial == 0
    assert parsed.version == (1, 1)
    assert parsed.source == 0
    assert parsed.destination == 1108152157446
    assert parsed.command == Command.SEND
    assert len(parsed.app) == 48
    assert checksum(VENDOR_FRAME[2:-3]) == 0x68


def test_vendor_frame_reading_time_is_the_object_time_tag() -> None:
    result = decode(frame(VENDOR_FRAME))
    assert {r.ts for r in result.readings} == {datetime(2020, 8, 1, 19, 18, 48, tzinfo=UTC)}
    assert {r.device_id for r in result.readings} == {"p1/1-3/000600d9"}


def test_panel_clock_offset_converts_time_tags_to_utc() -> None:
    result = decode(frame(VENDOR_FRAME, utc_offset="+08:00"))
    assert {r.ts for r in result.readings} == {datetime(2020, 8, 1, 11, 18, 48, tzinfo=UTC)}


def test_bad_utc_offset_meta_is_malformed() -> None:
    with pytest.raises(DecodeError) as info:
        decode(frame(VENDOR_FRAME, utc_offset="8h"))
    assert info.value.reason is DecodeReason.MALFORMED


def test_confirm_reply_echoes_serial_and_swaps_addresses() -> None:
    sent = CODEC.encode({"serial": 4242, "source": 7, "destination": 9, "system_type": 1, "at": AT})
    reply = parse_frame(confirm_reply(sent))
    assert (reply.serial, reply.command, reply.app) == (4242, Command.CONFIRM, b"")
    assert (reply.source, reply.destination) == (9, 7)
    assert reply.time_tag == parse_frame(sent).time_tag


def test_confirm_reply_carries_the_receivers_time_when_given() -> None:
    reply = parse_frame(confirm_reply(VENDOR_FRAME, now=AT))
    assert reply.time_tag == bytes((9, 8, 7, 6, 5, 24))


def test_deny_reply_uses_command_6() -> None:
    assert parse_frame(deny_reply(VENDOR_FRAME)).command == Command.DENY


def test_confirm_reply_refuses_a_bad_frame() -> None:
    with pytest.raises(DecodeError):
        confirm_reply(VENDOR_FRAME[:-4] + b"\x00##")


def test_bit0_set_means_normal_operation() -> None:
    got = values(
        CODEC.encode(
            {"info_type": 1, "system_type": 1, "system_address": 2, "status": 0x0001, "at": AT}
        )
    )
    assert got[("p1/1-2", "self_test")] is False
    assert got[("p1/1-2", "fire_alarm")] is False


def test_system_power_and_bus_faults() -> None:
    status = 1 | 1 << 8 | 1 << 10
    result = decode(
        frame(
            CODEC.encode(
                {"info_type": 1, "system_type": 10, "system_address": 1, "status": status, "at": AT}
            )
        )
    )
    got = {r.metric: r.value for r in result.readings}
    assert got[Metric.POWER_FAULT] is True
    assert got[Metric.FAULT] is True
    assert result.attributes["10-1.flags"] == "main_power_fault,bus_fault"


def test_impossible_time_tag_falls_back_to_reception_time_with_a_warning() -> None:
    app = encode_unit(
        1, [InfoObject(1, {"system_type": 1, "system_address": 1, "status": 3}, None, bytes(6))]
    )
    result = decode(frame(build_frame(serial=1, command=2, app=app)))
    assert {r.ts for r in result.readings} == {RECEIVED}
    assert any("time tag" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("analog_type", "raw", "key", "expected"),
    [
        (3, -105, "temperature_c", -10.5),
        (6, 999, "gas_lel_pct", 99.9),
        (5, 1234, "attr:1-1/00000001.pressure_kpa", 123.4),
        (2, 250, "attr:1-1/00000001.height_m", 2.5),
        (200, 7, "attr:1-1/00000001.analog_200", 7),
    ],
)
def test_analog_values_use_table_6_scaling(
    analog_type: int, raw: int, key: str, expected: float
) -> None:
    encoded = CODEC.encode(
        {
            "info_type": 3,
            "system_type": 1,
            "system_address": 1,
            "component_address": 1,
            "analog_type": analog_type,
            "analog_raw": raw,
            "at": AT,
        }
    )
    result = decode(frame(encoded))
    if key.startswith("attr:"):
        assert result.attributes[key[5:]] == pytest.approx(expected)
        assert result.readings == ()
    else:
        (reading,) = result.readings
        assert reading.metric.value == key
        assert reading.value == pytest.approx(expected)


def test_temperature_beyond_the_catalog_range_is_kept_and_flagged() -> None:
    encoded = CODEC.encode(
        {"info_type": 3, "component_address": 1, "analog_type": 3, "analog_raw": 3000, "at": AT}
    )
    (reading,) = decode(frame(encoded)).readings
    assert reading.value == pytest.approx(300.0)
    assert reading.quality.value == "out_of_range"


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            {"info_type": 5, "system_type": 1, "system_address": 4, "major": 2, "minor": 7},
            {"1-4.software_version": "2.7"},
        ),
        (
            {"info_type": 6, "system_type": 1, "system_address": 4, "description": "一号楼"},
            {"1-4.description": "一号楼"},
        ),
        (
            {
                "info_type": 7,
                "system_type": 1,
                "system_address": 4,
                "component_type": 42,
                "component_address": 0xABCD,
                "description": "三层",
            },
            {"1-4/0000abcd.description": "三层", "1-4/0000abcd.component_type": 42},
        ),
        (
            {"info_type": 8, "system_type": 1, "system_address": 4, "clock": AT},
            {"1-4.clock": AT.isoformat()},
        ),
        (
            {"info_type": 24, "operation": 0b100001, "operator": 3, "at": AT},
            {"uitd.operation": "reset,roll_call_answer", "uitd.operator": 3},
        ),
        ({"info_type": 25, "major": 1, "minor": 0}, {"uitd.software_version": "1.0"}),
        ({"info_type": 26, "description": "用传"}, {"uitd.description": "用传"}),
        ({"info_type": 28, "clock": AT}, {"uitd.clock": AT.isoformat()}),
    ],
)
def test_other_upload_types_become_attributes(
    info: dict[str, object], expected: dict[str, object]
) -> None:
    result = decode(frame(CODEC.encode(info)))
    assert result.readings == ()
    for key, value in expected.items():
        assert result.attributes[key] == value


def test_several_objects_of_one_frame_are_separate_sub_devices() -> None:
    objects = [
        {
            "system_type": 1,
            "system_address": 1,
            "component_address": n,
            "fire_alarm": n == 2,
            "at": AT,
        }
        for n in range(1, 4)
    ]
    got = values(CODEC.encode({"objects": objects}))
    assert [got[(f"p1/1-1/{n:08x}", "fire_alarm")] for n in range(1, 4)] == [False, True, False]


def test_undecodable_description_bytes_are_replaced_not_fatal() -> None:
    app = encode_unit(
        2,
        [
            InfoObject(
                2,
                {
                    "system_type": 1,
                    "system_address": 1,
                    "component_type": 0,
                    "component_address": 5,
                    "status": 1,
                },
                None,
                bytes((1, 1, 1, 1, 1, 24)),
            )
        ],
    )
    app = app[:11] + b"\xff\xff" + app[13:]
    result = decode(frame(build_frame(serial=1, command=2, app=app)))
    assert "\ufffd" in str(result.attributes["1-1/00000005.description"])


@pytest.mark.parametrize(
    ("app", "reason"),
    [
        (bytes((6, 4)) + bytes(3) * 4, DecodeReason.LENGTH),
        (bytes((1, 1)) + bytes(10) + b"\x00", DecodeReason.LENGTH),
        (bytes((1, 2)) + bytes(10), DecodeReason.TRUNCATED),
        (bytes((1,)), DecodeReason.TRUNCATED),
        (bytes((61, 1, 1, 1)), DecodeReason.UNSUPPORTED),
        (bytes((200, 0)), DecodeReason.UNKNOWN_TYPE),
    ],
)
def test_bad_application_units(app: bytes, reason: DecodeReason) -> None:
    with pytest.raises(DecodeError) as info:
        decode(frame(build_frame(serial=1, command=2, app=app)))
    assert info.value.reason is reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"##" + VENDOR_FRAME[2:], DecodeReason.MALFORMED),
        (VENDOR_FRAME[:4] + b"\x02" + VENDOR_FRAME[5:], DecodeReason.MALFORMED),
        (VENDOR_FRAME[:-2] + b"#!", DecodeReason.MALFORMED),
        (VENDOR_FRAME + b"\x00", DecodeReason.LENGTH),
        (VENDOR_FRAME[:20], DecodeReason.TRUNCATED),
    ],
)
def test_bad_frames(payload: bytes, reason: DecodeReason) -> None:
    with pytest.raises(DecodeError) as info:
        decode(frame(payload))
    assert info.value.reason is reason


@pytest.mark.parametrize(
    "bad",
    [
        {"info_type": 2, "description": "很" * 16, "at": AT},
        {"info_type": 2, "at": datetime(1999, 1, 1, tzinfo=UTC)},
        {"info_type": 9},
        {"info_type": 1, "system_address": 300},
        {"info_type": 1, "objects": [{}] * 103},
        {"info_type": 1, "serial": "one"},
    ],
)
def test_encoder_refuses_values_the_format_cannot_hold(bad: dict[str, object]) -> None:
    with pytest.raises(EncodeError):
        CODEC.encode(bad)
