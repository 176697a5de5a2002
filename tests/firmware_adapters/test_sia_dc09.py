"""SIA DC-09: CRC-16/ARC, message checks, ADM-CID and SIA-DCS content, and receiver replies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.types import RawFrame
from firmware_adapters.codecs.ip.sia_dc09 import CODEC, ack_reply, decode, nak_reply, reply_for
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.framing.sia_dc09 import build_message, crc16_arc, parse_message

EXAMPLE = b'\nA050003E"ADM-CID"7086R12L0#0FAE[#0FAE|1302 51 566]_19:10:28,01-12-2016\r'
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def frame(payload: bytes) -> RawFrame:
    return RawFrame("dc09", CODEC.id, payload, NOW, {"device_id": "panel"})


def test_crc16_arc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D


def test_example_crc_and_length_are_consistent() -> None:
    body = EXAMPLE[9:-1]
    assert f"{crc16_arc(body):04X}".encode() == EXAMPLE[1:5]
    assert int(EXAMPLE[5:9], 16) == len(body)
    assert build_message(body.decode()) == EXAMPLE


def test_example_fields() -> None:
    message = parse_message(CODEC.id, EXAMPLE)
    assert (message.id, message.sequence, message.receiver, message.line, message.account) == (
        "ADM-CID",
        "7086",
        "12",
        "0",
        "0FAE",
    )
    assert message.timestamp == "19:10:28,01-12-2016"


def test_message_timestamp_is_the_reading_time() -> None:
    (reading,) = decode(frame(EXAMPLE)).readings
    assert reading.ts == datetime(2016, 1, 12, 19, 10, 28, tzinfo=UTC)


def test_lowercase_crc_digits_are_accepted() -> None:
    assert decode(frame(EXAMPLE.replace(b"A050", b"a050"))).readings


def test_ack_echoes_sequence_receiver_line_and_account() -> None:
    ack = parse_message(CODEC.id, ack_reply(EXAMPLE, NOW))
    assert (ack.id, ack.sequence, ack.receiver, ack.line, ack.account, ack.data) == (
        "ACK",
        "7086",
        "12",
        "0",
        "0FAE",
        "",
    )
    assert ack.timestamp == "05:06:07,03-04-2026"


def test_reply_for_a_good_message_is_ack() -> None:
    assert parse_message(CODEC.id, reply_for(EXAMPLE, NOW)).id == "ACK"


def test_reply_for_a_bad_crc_is_nak_with_time() -> None:
    nak = parse_message(CODEC.id, reply_for(EXAMPLE.replace(b"A050", b"A051"), NOW))
    assert nak.id == "NAK"
    assert nak.timestamp == "05:06:07,03-04-2026"
    assert nak_reply(NOW) == reply_for(EXAMPLE[:-3] + b"7\r", NOW)


@pytest.mark.parametrize(
    "payload",
    [build_message('"*SIA-DCS"0001L0#1234[8D6F3A09C2B1]'), build_message('"FOO"0009L0#1234[]')],
)
def test_reply_for_messages_not_understood_is_duh(payload: bytes) -> None:
    duh = parse_message(CODEC.id, reply_for(payload, NOW))
    assert duh.id == "DUH"
    assert duh.sequence in {"0001", "0009"}


def test_reply_for_unparseable_bytes_is_duh_without_echo() -> None:
    assert parse_message(CODEC.id, reply_for(build_message("nonsense"), NOW)).id == "DUH"


def test_sia_dcs_several_events_and_modifiers() -> None:
    payload = build_message('"SIA-DCS"0003L0#1234[#1234|Nri2/BA004/TA004/id7/YT]')
    result = decode(frame(payload))
    got = {(r.device_id, r.metric.value, r.value) for r in result.readings}
    assert got == {
        ("panel/zone-004", "intrusion", True),
        ("panel/zone-004", "tamper", True),
        ("panel", "low_battery", True),
    }
    assert result.attributes["sia_ri"] == "2"


def test_sia_dcs_restore_clears_the_metric() -> None:
    (reading,) = decode(
        frame(CODEC.encode({"id": "SIA-DCS", "sia_code": "FH", "zone": 15}))
    ).readings
    assert (reading.metric.value, reading.value) == ("fire_alarm", False)


def test_adm_cid_maps_like_contact_id() -> None:
    result = decode(frame(CODEC.encode({"event_code": "111", "zone": 3, "partition": 2})))
    assert {(r.metric.value, r.value) for r in result.readings} == {
        ("fire_alarm", True),
        ("smoke", True),
    }
    assert result.attributes["partition"] == "02"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (EXAMPLE.replace(b"003E", b"003F"), DecodeReason.LENGTH),
        (EXAMPLE + b"x", DecodeReason.LENGTH),
        (EXAMPLE.replace(b"A050", b"ZZZZ"), DecodeReason.MALFORMED),
        (EXAMPLE[:20], DecodeReason.TRUNCATED),
        (build_message('"ADM-CID"0001L0#1234[#1234|9110 00 001]'), DecodeReason.MALFORMED),
        (build_message('"ADM-CID"0001L0#1234[#1234|1110 00]'), DecodeReason.MALFORMED),
        (build_message('"SIA-DCS"0001L0#1234[#1234|N/F?]'), DecodeReason.MALFORMED),
        (build_message('"SIA-DCS"0001L0#1234[#1234|N]'), DecodeReason.MALFORMED),
        (build_message('"NULL"12L0[]'), DecodeReason.MALFORMED),
    ],
)
def test_bad_messages(payload: bytes, reason: DecodeReason) -> None:
    with pytest.raises(DecodeError) as info:
        decode(frame(payload))
    assert info.value.reason is reason


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "XYZ"},
        {"sequence": 10_000},
        {"account": "12"},
        {"id": "SIA-DCS", "sia_code": "fa"},
        {"id": "SIA-DCS", "zone": "12345"},
        {"event_code": "89A"},
    ],
)
def test_encoder_refuses_what_dc09_cannot_carry(bad: dict[str, object]) -> None:
    with pytest.raises(EncodeError):
        CODEC.encode(bad)
