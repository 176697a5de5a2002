"""Modbus register tables and the RTU response codecs (CRC and PDUs via pymodbus)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU

from core.metrics import Metric
from core.types import RawFrame
from firmware_adapters.codecs.modbus import dfrobot_sen0310, dfrobot_sen0492, generic_table
from firmware_adapters.errors import DecodeError, DecodeIssue, DecodeReason, EncodeError, IssueKind
from firmware_adapters.framing.modbus_rtu import build_response, parse_response
from firmware_adapters.modbus_table import (
    DataType,
    RegisterField,
    RegisterTable,
    TableError,
    WordOrder,
    decode_registers,
    encode_registers,
    parse_register_table,
)

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def frame(codec_id: str, adu: bytes, **meta: str) -> RawFrame:
    return RawFrame("rs485", codec_id, adu, RECEIVED, {"device_id": "s1", **meta})


def test_sen0492_vendor_example() -> None:
    assert build_response(0x50, [0x070B]) == bytes.fromhex("500302070b067f")
    result = dfrobot_sen0492.CODEC.decode(
        frame(dfrobot_sen0492.CODEC_ID, bytes.fromhex("500302070b067f"), address="0x34")
    )
    assert [(r.device_id, r.metric, r.value) for r in result.readings] == [
        ("s1", Metric.DISTANCE_MM, 1803)
    ]


def test_pymodbus_framer_accepts_what_we_build() -> None:
    adu = build_response(0x0B, [1, 2, 3], function=4)
    used, pdu = FramerRTU(DecodePDU(is_server=False)).handleFrame(adu, 0, 0)
    assert used == len(adu)
    assert pdu is not None
    assert list(pdu.registers) == [1, 2, 3]
    assert parse_response("t", adu).registers == (1, 2, 3)


def test_sen0310_scales_cm_to_mm_and_reads_signed_temperature() -> None:
    adu = dfrobot_sen0310.CODEC.encode({"distance_mm": 1230, "temperature_c": -20.0})
    result = dfrobot_sen0310.CODEC.decode(frame(dfrobot_sen0310.CODEC_ID, adu, address="5"))
    assert {r.metric: r.value for r in result.readings} == {
        Metric.DISTANCE_MM: 1230,
        Metric.TEMPERATURE_C: pytest.approx(-20.0),
    }
    assert result.attributes == {"slave": 0x0B, "function": 3}


def test_partial_block_decodes_what_it_covers_and_warns() -> None:
    adu = build_response(0x0B, [45])
    result = dfrobot_sen0310.CODEC.decode(frame(dfrobot_sen0310.CODEC_ID, adu, address="5"))
    assert [r.metric for r in result.readings] == [Metric.DISTANCE_MM]
    assert len(result.warnings) == 1
    assert "temperature_c" in result.warnings[0]


@pytest.mark.parametrize(
    ("data_type", "order", "words", "expected"),
    [
        (DataType.U16, WordOrder.BIG, [0xFFFF], 65535),
        (DataType.S16, WordOrder.BIG, [0xFFFF], -1),
        (DataType.U32, WordOrder.BIG, [0x0001, 0x0002], 65538),
        (DataType.U32, WordOrder.LITTLE, [0x0002, 0x0001], 65538),
        (DataType.S32, WordOrder.BIG, [0xFFFF, 0xFFFE], -2),
        (DataType.F32, WordOrder.BIG, [0x41C8, 0x0000], 25.0),
        (DataType.F32, WordOrder.LITTLE, [0x0000, 0x41C8], 25.0),
    ],
)
def test_data_types_and_word_order(
    data_type: DataType, order: WordOrder, words: list[int], expected: float
) -> None:
    field = RegisterField(Metric.WATER_LEVEL_MM, 10, data_type, word_order=order)
    assert field.value(words) == expected
    assert field.words_of(expected) == words


def test_scale_offset_and_booleans() -> None:
    table = RegisterTable(
        (
            RegisterField(Metric.TEMPERATURE_C, 0, DataType.S16, scale=0.1, offset=-40),
            RegisterField(Metric.WATER_LEAK, 1),
        )
    )
    found, missing = decode_registers(table, 0, [650, 3])
    assert missing == []
    assert [(f.metric, v) for f, v in found] == [
        (Metric.TEMPERATURE_C, pytest.approx(25.0)),
        (Metric.WATER_LEAK, True),
    ]
    assert encode_registers(table, {Metric.TEMPERATURE_C: 25.0, Metric.WATER_LEAK: True}) == [
        650,
        1,
    ]
    assert table.first == 0
    assert table.count == 2


def test_value_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        RegisterField(Metric.DISTANCE_MM, 0).words_of(70_000)
    with pytest.raises(EncodeError):
        dfrobot_sen0492.CODEC.encode({"distance_mm": -5})


def test_parse_register_table_reports_every_error_at_once() -> None:
    with pytest.raises(TableError) as info:
        parse_register_table(
            {
                "function": 6,
                "colour": "red",
                "fields": [
                    {"metric": "litres", "address": 0},
                    {"metric": "distance_mm", "address": 70000, "type": "u64"},
                    {"metric": "temperature_c", "address": 1, "scale": 0, "word_order": "middle"},
                    {"metric": "fill_pct", "address": 1, "type": "u32", "extra": 1},
                    "not a mapping",
                ],
            }
        )
    text = "\n".join(info.value.errors)
    for fragment in (
        "function",
        "colour",
        "fields[0].metric",
        "fields[1].address",
        "fields[1].type",
        "fields[2].scale",
        "fields[2].word_order",
        "fields[3]: unknown keys",
        "fields[4]",
    ):
        assert fragment in text
    assert len(info.value.errors) >= 9


def test_parse_register_table_refuses_overlaps_and_repeated_metrics() -> None:
    with pytest.raises(TableError) as info:
        parse_register_table(
            {
                "fields": [
                    {"metric": "distance_mm", "address": 0, "type": "u32"},
                    {"metric": "distance_mm", "address": 1},
                ]
            }
        )
    assert "fields[1]: register 1 already used by fields[0]" in info.value.errors
    assert any("twice" in e for e in info.value.errors)


def test_parse_register_table_builds_the_table() -> None:
    table = parse_register_table(
        {
            "function": 4,
            "fields": [{"metric": "gas_lel_pct", "address": 0x100, "type": "u16", "scale": 0.1}],
        }
    )
    assert table == RegisterTable(
        (RegisterField(Metric.GAS_LEL_PCT, 0x100, scale=0.1),), function=4
    )


def test_generic_table_from_meta_is_parsed_once() -> None:
    spec = {"fields": [{"metric": "water_level_mm", "address": 3}]}
    text = json.dumps(spec, separators=(",", ":"))
    adu = generic_table.encode({"table": spec, "water_level_mm": 812, "slave": 7})
    generic_table.table_from_json.cache_clear()
    for _ in range(3):
        result = generic_table.decode(
            frame(generic_table.CODEC_ID, adu, address="3", register_table=text)
        )
        assert [(r.metric, r.value) for r in result.readings] == [(Metric.WATER_LEVEL_MM, 812)]
    assert generic_table.table_from_json.cache_info().misses == 1


@pytest.mark.parametrize("table", ["", "[1]", "{bad json", '{"fields": []}'])
def test_generic_table_without_a_valid_table_is_malformed(table: str) -> None:
    with pytest.raises(DecodeError) as info:
        generic_table.decode(
            frame(generic_table.CODEC_ID, build_response(1, [1]), register_table=table)
        )
    assert info.value.reason is DecodeReason.MALFORMED


def test_generic_encoder_needs_a_table() -> None:
    with pytest.raises(EncodeError):
        generic_table.encode({"water_level_mm": 1})
    with pytest.raises(EncodeError):
        generic_table.encode({"table": {"fields": []}})


@pytest.mark.parametrize(
    ("adu", "reason"),
    [
        (bytes.fromhex("5003"), DecodeReason.TRUNCATED),
        (bytes.fromhex("500302070b067e"), DecodeReason.CHECKSUM),
        (bytes.fromhex("5083029120"), DecodeReason.UNSUPPORTED),
        (bytes.fromhex("5006003400010445"), DecodeReason.UNKNOWN_TYPE),
        (bytes.fromhex("500304070be67e"), DecodeReason.LENGTH),
    ],
)
def test_bad_responses(adu: bytes, reason: DecodeReason) -> None:
    with pytest.raises(DecodeError) as info:
        dfrobot_sen0492.CODEC.decode(frame(dfrobot_sen0492.CODEC_ID, adu))
    assert info.value.reason is reason


def test_odd_byte_count_is_a_length_error() -> None:
    body = bytes.fromhex("50030307 0b00".replace(" ", ""))
    adu = body + FramerRTU.compute_CRC(body).to_bytes(2, "big")
    with pytest.raises(DecodeError) as info:
        parse_response("t", adu)
    assert info.value.reason is DecodeReason.LENGTH


@pytest.mark.parametrize(
    ("slave", "registers", "function"), [(300, [1], 3), (1, [], 3), (1, [1], 6), (1, [70000], 3)]
)
def test_build_response_refuses_impossible_frames(
    slave: int, registers: list[int], function: int
) -> None:
    with pytest.raises(ValueError, match=r"cannot build|0-65535"):
        build_response(slave, registers, function)


@pytest.mark.parametrize("nan_or_inf", [0x7FC0_0000, 0x7F80_0000, 0xFF80_0000])
def test_a_non_finite_f32_register_drops_only_that_value(nan_or_inf: int) -> None:
    table = (
        '{"fields":[{"metric":"temperature_c","address":0,"type":"f32"},'
        '{"metric":"water_level_mm","address":2}]}'
    )
    adu = build_response(1, [nan_or_inf >> 16, nan_or_inf & 0xFFFF, 1234])
    result = generic_table.CODEC.decode(frame(generic_table.CODEC_ID, adu, register_table=table))
    assert [(r.metric, r.value) for r in result.readings] == [(Metric.WATER_LEVEL_MM, 1234)]
    (issue,) = result.warnings
    assert isinstance(issue, DecodeIssue)
    assert issue.kind is IssueKind.NON_FINITE
    assert "temperature_c" in issue


@pytest.mark.parametrize(
    "table",
    ["[" * 5000 + "]" * 5000, '{"function":[],"fields":[{"metric":"tamper","address":0}]}'],
    ids=["deeply-nested", "unhashable-function"],
)
def test_hostile_table_metadata_is_malformed(table: str) -> None:
    with pytest.raises(DecodeError) as info:
        generic_table.CODEC.decode(
            frame(generic_table.CODEC_ID, build_response(1, [1]), register_table=table)
        )
    assert info.value.reason is DecodeReason.MALFORMED
