"""Hostile input for every registered codec: only `DecodeError`, never a NaN or an infinity.

Each codec's own vector payloads are mutated (bytes flipped, inserted, cut, duplicated; JSON values
swapped for hostile ones); where a format carries a checksum it is recomputed half of the time, so
the mutation reaches the fields behind it. The codec must then either decode, with every number
finite, or raise `DecodeError` with a reason of the format (`codec_error` marks a codec bug).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU
from vector_cases import VectorCase, all_cases

from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, guard_decoder
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.framing.sia_dc09 import crc16_arc
from firmware_adapters.gbt26875.frame import checksum
from firmware_adapters.panel_events import DIGITS, checksum_digit
from firmware_adapters.registry import CODECS

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SEEDS: dict[str, list[VectorCase]] = {}
for _case in all_cases():
    SEEDS.setdefault(_case.codec_id, []).append(_case)

HOSTILE_JSON: list[object] = [
    {},
    [],
    "é",
    "AXVcA4JECAQAAQ==é",
    "",
    "AAAA====",
    "٣",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "9" * 5000,
    -1,
    2**63,
    1.7976931348623157e308,
    5e-324,
    True,
    None,
    [[["deep"]]],
    {"state": {"nested": 1}},
]


def _modbus_crc(adu: bytes) -> bytes:
    if len(adu) < 5:
        return adu
    body = adu[:2] + bytes([(len(adu) - 5) & 0xFF]) + adu[3:-2]
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def _sum_zero(payload: bytes) -> bytes:
    return payload[:-1] + bytes([-sum(payload[:-1]) & 0xFF]) if payload else payload


def _gbt_checksum(frame: bytes) -> bytes:
    if len(frame) < 30 or frame[:2] != b"@@":
        return frame
    app = frame[27:-3]
    head = bytearray(frame[2:27])
    head[22:24] = len(app).to_bytes(2, "little")
    body = bytes(head) + app
    return b"@@" + body + bytes([checksum(body)]) + b"##"


def _dc09_crc(message: bytes) -> bytes:
    inner = message.strip(b"\n\r")
    if len(inner) < 8:
        return message
    body = inner[8:]
    return b"\n%04X%04X%s\r" % (crc16_arc(body), len(body) & 0xFFF, body)


def _contact_id_sum(message: bytes) -> bytes:
    digits = "".join(message.decode("latin-1").split()).upper()
    if len(digits) != 16 or any(c not in DIGITS for c in digits[:15]):
        return message
    return (digits[:15] + checksum_digit(digits[:15])).encode()


FIXERS: dict[str, Callable[[bytes], bytes]] = {
    "lorawan.milesight.gs524n": _sum_zero,
    "serial.gbt26875.3": _gbt_checksum,
    "ip.sia.dc09": _dc09_crc,
    "serial.ademco.contact_id": _contact_id_sum,
}


def _fixer(codec_id: str) -> Callable[[bytes], bytes] | None:
    return _modbus_crc if codec_id.startswith("modbus.") else FIXERS.get(codec_id)


@st.composite
def mutated_bytes(draw: st.DrawFn, payload: bytes) -> bytes:
    """Up to four byte-level edits of `payload`."""
    buf = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 5))
        at = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == 0 and buf:
            buf[at] = draw(
                st.sampled_from([0x00, 0x7F, 0x80, 0xC0, 0xFF, draw(st.integers(0, 255))])
            )
        elif op == 1 and buf:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 2 and buf:
            del buf[at]
        elif op == 3:
            buf.insert(at, draw(st.integers(0, 255)))
        elif op == 4 and buf:
            buf[at:at] = buf[at : at + draw(st.integers(1, 8))]
        elif op == 5:
            del buf[at:]
    return bytes(buf)


@st.composite
def mutated_json(draw: st.DrawFn, payload: bytes) -> bytes:
    """One to three values of a JSON document replaced by hostile ones (or deleted)."""
    doc = json.loads(payload)
    for _ in range(draw(st.integers(1, 3))):
        paths: list[list[str | int]] = []

        def walk(node: object, path: list[str | int]) -> None:
            paths.append(path)  # noqa: B023 - collected per round
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(value, [*path, key])
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, [*path, i])

        walk(doc, [])
        path = draw(st.sampled_from(paths))
        value = copy.deepcopy(draw(st.sampled_from(HOSTILE_JSON)))  # never mutate the table
        if not path:
            doc = value
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return json.dumps(doc).encode()


def _is_json(case: VectorCase) -> bool:
    payload = case.frame().payload
    if payload[:1] not in {b"{", b"["}:
        return False
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True


JSON_SEEDS = {c: [v for v in cases if _is_json(v)] for c, cases in SEEDS.items()}
JSON_CODECS = sorted(c for c, cases in JSON_SEEDS.items() if cases)


@st.composite
def hostile_frame(draw: st.DrawFn, codec_id: str, *, json_only: bool = False) -> RawFrame:
    """A vector of `codec_id` with mutated payload (checksum repaired half of the time)."""
    case = draw(st.sampled_from(JSON_SEEDS[codec_id] if json_only else SEEDS[codec_id]))
    seed = case.frame()
    payload = seed.payload
    if _is_json(case) and (json_only or draw(st.booleans())):
        payload = draw(mutated_json(payload))
    else:
        payload = draw(mutated_bytes(payload))
        fix = _fixer(codec_id)
        if fix is not None and draw(st.booleans()):
            payload = fix(payload)
    meta = dict(seed.meta)
    if draw(st.integers(0, 9)) == 0 and meta:
        key = draw(st.sampled_from(sorted(meta)))
        meta[key] = draw(st.sampled_from(["", "x", "9" * 5000, "-1", "٣", "[]", "{}"]))
    return RawFrame("hostile", codec_id, payload, NOW, meta)


def assert_finite(result: DecodeResult) -> None:
    """Every number the codec returned is finite."""
    for reading in result.readings:
        assert not isinstance(reading.value, float) or math.isfinite(reading.value), reading
    for key, value in result.attributes.items():
        assert not isinstance(value, float) or math.isfinite(value), (key, value)


def decode_hostile(codec: Codec, frame: RawFrame) -> None:
    """Decode `frame`: a result with finite numbers, or a `DecodeError` of the format."""
    try:
        result = codec.decode(frame)
    except DecodeError as err:
        failure = err
    else:
        assert_finite(result)
        return
    # A reason of the format; `codec_error` would be a codec bug (the guard caught it).
    assert failure.reason is not DecodeReason.CODEC_ERROR, (frame.payload, failure.__cause__)
    assert failure.codec_id == codec.id


def test_every_registered_codec_has_vectors_to_mutate() -> None:
    assert sorted(SEEDS) == sorted(CODECS)


@pytest.mark.parametrize("codec_id", sorted(CODECS))
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_vectors_only_raise_decode_errors_and_stay_finite(
    codec_id: str, data: st.DataObject
) -> None:
    decode_hostile(CODECS[codec_id], data.draw(hostile_frame(codec_id)))


@pytest.mark.parametrize("codec_id", JSON_CODECS)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_json_vectors_only_raise_decode_errors_and_stay_finite(
    codec_id: str, data: st.DataObject
) -> None:
    decode_hostile(CODECS[codec_id], data.draw(hostile_frame(codec_id, json_only=True)))


def _codec(decode: Callable[[RawFrame], DecodeResult]) -> Codec:
    return Codec("ip.test.guard", DeviceClass.GENERIC, "test", decode, lambda _v: b"", Path("-"))


def test_any_other_exception_becomes_a_codec_error_chained_to_its_cause() -> None:
    def broken(frame: RawFrame) -> DecodeResult:
        return DecodeResult((), (), {"ratio": 1 / len(frame.payload)})

    with pytest.raises(DecodeError) as info:
        _codec(broken).decode(RawFrame("t", "ip.test.guard", b"", NOW))
    assert info.value.reason is DecodeReason.CODEC_ERROR
    assert info.value.codec_id == "ip.test.guard"
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "ZeroDivisionError" in info.value.detail


def test_decode_errors_pass_the_guard_unchanged_and_guarding_twice_wraps_once() -> None:
    refusal = DecodeError("ip.test.guard", DecodeReason.TRUNCATED, "short")

    def refuse(_frame: RawFrame) -> DecodeResult:
        raise refusal

    codec = _codec(refuse)
    assert guard_decoder(codec.id, codec.decode) is codec.decode
    with pytest.raises(DecodeError) as info:
        codec.decode(RawFrame("t", "ip.test.guard", b"", NOW))
    assert info.value is refusal
