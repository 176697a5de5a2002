"""Contact ID messages: checksum rule, event mapping, sub-devices and the encoder."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.metrics import Metric
from core.types import RawFrame
from firmware_adapters.codecs.serial.ademco_contact_id import CODEC, decode
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.panel_events import checksum_digit, digit_value

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def frame(text: str | bytes) -> RawFrame:
    payload = text if isinstance(text, bytes) else text.encode()
    return RawFrame("rx", CODEC.id, payload, RECEIVED, {"device_id": "panel"})


@pytest.mark.parametrize(
    "message",
    [
        "1234181131010158",
        "1234183131010156",
        "1234181401020035",
        "123418340103005F",
        "1234567890BCDEFF",
    ],
)
def test_checksum_digit_matches_spandsp(message: str) -> None:
    assert checksum_digit(message[:15]) == message[15]


def test_zero_counts_as_ten_and_b_to_f_as_eleven_to_fifteen() -> None:
    assert [digit_value(c) for c in "0159BCDEF"] == [10, 1, 5, 9, 11, 12, 13, 14, 15]


def test_sum_already_multiple_of_15_gives_f_never_0() -> None:
    body = "123418340103005"
    assert sum(digit_value(c) for c in body) % 15 == 0
    assert checksum_digit(body) == "F"


@pytest.mark.parametrize(
    ("code", "metrics"),
    [
        ("110", {Metric.FIRE_ALARM}),
        ("111", {Metric.FIRE_ALARM, Metric.SMOKE}),
        ("114", {Metric.FIRE_ALARM}),
        ("130", {Metric.INTRUSION}),
        ("131", {Metric.INTRUSION}),
        ("134", {Metric.INTRUSION}),
        ("137", {Metric.TAMPER}),
        ("144", {Metric.TAMPER}),
        ("301", {Metric.POWER_FAULT}),
        ("302", {Metric.LOW_BATTERY}),
        ("384", {Metric.LOW_BATTERY}),
        ("380", {Metric.FAULT}),
        ("602", {Metric.ONLINE}),
    ],
)
@pytest.mark.parametrize(("qualifier", "value"), [(1, True), (3, False), (6, True)])
def test_event_codes_map_to_canonical_metrics(
    code: str, metrics: set[Metric], qualifier: int, value: bool
) -> None:
    result = decode(frame(CODEC.encode({"event_code": code, "qualifier": qualifier, "zone": 9})))
    assert {r.metric for r in result.readings} == metrics
    assert all(r.value is value and r.device_id == "panel/zone-009" for r in result.readings)
    assert all(r.ts == RECEIVED for r in result.readings)
    assert result.attributes["event_code"] == code


def test_open_close_names_the_user_and_armed_state() -> None:
    closing = decode(frame(CODEC.encode({"event_code": "401", "qualifier": 3, "zone": 12})))
    assert closing.attributes["user"] == "012"
    assert closing.attributes["armed"] is True
    assert "zone" not in closing.attributes


def test_user_events_with_a_metric_belong_to_the_user_sub_device() -> None:
    assert (
        decode(frame("1234181131000000"[:15] + checksum_digit("123418113100000")))
        .readings[0]
        .device_id
        == "panel"
    )


def test_canonical_boolean_selects_the_qualifier() -> None:
    restore = decode(frame(CODEC.encode({"event_code": "131", "intrusion": False, "zone": 1})))
    assert restore.attributes["qualifier"] == "restore"
    assert [r.value for r in restore.readings] == [False]


def test_spaces_lowercase_and_line_ends_are_accepted() -> None:
    result = decode(frame(b" 1234 18 1 131 01 015 8\r\n"))
    assert result.attributes["zone"] == "015"
    assert decode(frame("1234181131010158".lower())).attributes["account"] == "1234"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1234181131010159", DecodeReason.CHECKSUM),
        ("12341811310101", DecodeReason.LENGTH),
        ("1234A81131010158", DecodeReason.MALFORMED),
        ("1234181131010\xe958", DecodeReason.MALFORMED),
        ("1234567890BCDEFF", DecodeReason.UNSUPPORTED),
    ],
)
def test_bad_messages(text: str, reason: DecodeReason) -> None:
    with pytest.raises(DecodeError) as info:
        decode(frame(text.encode("latin-1")))
    assert info.value.reason is reason
    assert info.value.codec_id == CODEC.id


def test_qualifier_outside_1_3_6_is_a_range_error() -> None:
    body = "123418213101015"
    with pytest.raises(DecodeError) as info:
        decode(frame(body + checksum_digit(body)))
    assert info.value.reason is DecodeReason.RANGE


@pytest.mark.parametrize(
    "bad",
    [
        {"event_code": "89A"},
        {"account": "12345"},
        {"zone": 1000},
        {"zone": -1},
        {"partition": "A1"},
    ],
)
def test_encoder_refuses_what_contact_id_cannot_carry(bad: dict[str, object]) -> None:
    with pytest.raises(EncodeError):
        CODEC.encode(bad)


def test_encoder_output_is_one_line() -> None:
    assert (
        CODEC.encode({"account": "1234", "event_code": "131", "partition": 1, "zone": 15})
        == b"1234181131010158\r\n"
    )
