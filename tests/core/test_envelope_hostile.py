"""Hostile input to `core.envelope_json.loads`: only an `Envelope` or an `EnvelopeError` comes out.

Regression cases first (one minimal input per kind of failure), then a Hypothesis test that mutates
valid envelopes (bytes flipped, inserted, cut, spliced; JSON values swapped for NaN, huge numbers,
deep nesting, long strings, lone surrogates, bad times) and checks the contract.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import envelope_json
from core.errors import EnvelopeError, EnvelopeErrorCode
from core.metrics import Metric, Quality
from core.types import (
    ENVELOPE_LIMITS,
    AlarmEvent,
    AlarmState,
    Envelope,
    Priority,
    Reading,
    Severity,
    WorkOrderHint,
)

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
LIMITS = ENVELOPE_LIMITS
Code = EnvelopeErrorCode


def _event(seq: int = 1) -> AlarmEvent:
    return AlarmEvent(
        fingerprint="c1/smoke-01/smoke_detected",
        seq=seq,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=T0,
        at=T0,
        rule_id="smoke_detected",
        device_id="smoke-01",
        location="pudong/zj/c1/g1/c1/b2/u1",
        description="A smoke detector reports smoke.",
        valid_until=T0 + timedelta(minutes=4),
        value=12.5,
        evidence={"smoke": True, "smoke_pct": 12.5, "count": 3, "codec": "lorawan.x.y"},
        suppressed=("maintenance",),
        work_order=WorkOrderHint("fire", Priority.URGENT),
        rule_version="3",
    )


def _envelope(n_readings: int = 2) -> Envelope:
    readings = tuple(
        Reading(
            f"bin-{i}",
            Metric.FILL_PCT if i % 2 else Metric.SMOKE,
            float(i) + 0.5 if i % 2 else True,
            T0 + timedelta(seconds=i),
            codec_id="lorawan.dingtek.df702",
        )
        for i in range(n_readings)
    )
    return Envelope("gw-01", uuid.UUID(int=7), T0, readings, (_event(),))


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(envelope_json.dumps(_envelope()))
    return doc


_HOLE = "\x00hole\x00"


def _with_raw(path: list[str | int], raw: str) -> bytes:
    """A valid envelope with the JSON value at `path` replaced by the literal text `raw`."""
    doc = _doc()
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = _HOLE
    text = json.dumps(doc, ensure_ascii=False).replace(json.dumps(_HOLE), raw)
    return text.encode("utf-8", "surrogatepass")


def _refusal(data: bytes | str) -> EnvelopeError:
    with pytest.raises(EnvelopeError) as info:
        envelope_json.loads(data)
    return info.value


# --- findings, one minimal input each ------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_is_too_deep_not_a_recursion_error(depth: int) -> None:
    err = _refusal(b"[" * depth + b"]" * depth)
    assert err.code is Code.TOO_DEEP
    err = _refusal(b'{"a":' * depth + b"1" + b"}" * depth)
    assert err.code is Code.TOO_DEEP


def test_nesting_in_an_unknown_field_is_bounded() -> None:
    # The envelope is level 1, so a field of it nested n deep reaches level n + 1.
    inside = LIMITS.max_depth - 1
    accepted = _with_raw(["extension"], "[" * inside + "]" * inside)
    assert envelope_json.loads(accepted).gateway_id == "gw-01"
    err = _refusal(_with_raw(["extension"], "[" * (inside + 1) + "]" * (inside + 1)))
    assert (err.code, err.field) == (Code.TOO_DEEP, "extension")
    err = _refusal(_with_raw(["readings", 0, "extension"], "[" * 40 + "]" * 40))
    assert (err.code, err.field) == (Code.TOO_DEEP, "readings[0].extension")


@pytest.mark.parametrize(
    ("path", "raw", "code"),
    [
        (["readings", 1, "value"], "1" + "0" * 5000, Code.TOO_LARGE),  # int-str conversion limit
        (["readings", 1, "value"], "1" + "0" * 400, Code.TOO_LARGE),  # too large for a float
        (["readings", 1, "value"], "9223372036854775808", Code.TOO_LARGE),  # 2**63
        (["readings", 1, "value"], "1" + "0" * 400 + ".0", Code.NON_FINITE),
        (["readings", 1, "value"], "NaN", Code.NON_FINITE),
        (["readings", 1, "value"], "Infinity", Code.NON_FINITE),
        (["readings", 1, "value"], "-Infinity", Code.NON_FINITE),
        (["readings", 1, "value"], "1e400", Code.NON_FINITE),
        (["readings", 1, "value"], "-1e400", Code.NON_FINITE),
        (["readings", 1, "ts"], "1e99999", Code.NON_FINITE),
        (["alarm_events", 0, "value"], "NaN", Code.NON_FINITE),
        (["alarm_events", 0, "evidence", "smoke_pct"], "Infinity", Code.NON_FINITE),
        (["alarm_events", 0, "evidence", "count"], "1" + "0" * 30, Code.TOO_LARGE),
        (["alarm_events", 0, "seq"], "1" + "0" * 5000, Code.TOO_LARGE),
        (["schema_version"], "1" + "0" * 5000, Code.TOO_LARGE),
    ],
)
def test_numbers_beyond_the_format_name_their_field(
    path: list[str | int], raw: str, code: EnvelopeErrorCode
) -> None:
    err = _refusal(_with_raw(path, raw))
    assert err.code is code
    assert err.field == ".".join(
        f"{key}" if isinstance(key, str) else f"[{key}]" for key in path
    ).replace(".[", "[")


@pytest.mark.parametrize("raw", ["NaN", "1e400", "1" + "0" * 5000])
def test_a_refused_number_in_an_unknown_field_is_refused_too(raw: str) -> None:
    err = _refusal(_with_raw(["alarm_events", 0, "extension"], f"[{raw}]"))
    assert err.field == "alarm_events[0].extension"
    assert err.code in {Code.NON_FINITE, Code.TOO_LARGE}


def test_the_largest_64_bit_integers_are_numbers() -> None:
    envelope = envelope_json.loads(_with_raw(["alarm_events", 0, "seq"], str(2**63 - 1)))
    assert envelope.alarm_events[0].seq == 2**63 - 1
    envelope = envelope_json.loads(_with_raw(["readings", 1, "value"], str(-(2**63))))
    assert envelope.readings[1].value == float(-(2**63))


def test_a_document_from_another_parser_is_checked_the_same() -> None:
    doc = _doc()
    doc["readings"][1]["value"] = math.nan
    with pytest.raises(EnvelopeError) as info:
        envelope_json.envelope_from_json(doc)
    assert (info.value.code, info.value.field) == (Code.NON_FINITE, "readings[1].value")
    doc["readings"][1]["value"] = 10**400
    with pytest.raises(EnvelopeError) as info:
        envelope_json.envelope_from_json(doc)
    assert info.value.code is Code.TOO_LARGE


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xff", Code.BAD_JSON),
        (b'{"gateway_id": "\xc3\x28"}', Code.BAD_JSON),  # invalid UTF-8 inside a string
        (b"\xef\xbb\xbf{}", Code.BAD_JSON),  # byte order mark
        ("\ufeff{}", Code.BAD_JSON),
        ('{"gateway_id": "\ud800"}', Code.BAD_JSON),  # lone surrogate in text given as str
        (b"[]", Code.SCHEMA),
        (b"null", Code.SCHEMA),
        (b'"envelope"', Code.SCHEMA),
        (b"42", Code.SCHEMA),
        (b"", Code.BAD_JSON),
        (b'{"a":1} {"b":2}', Code.BAD_JSON),
        ('{"a":1}'.encode("utf-16"), Code.BAD_JSON),  # UTF-8 only
    ],
)
def test_documents_that_are_not_envelopes(data: bytes | str, code: EnvelopeErrorCode) -> None:
    assert _refusal(data).code is code


def test_input_that_is_neither_bytes_nor_text_is_refused() -> None:
    err = _refusal(memoryview(b"{}"))  # type: ignore[arg-type]
    assert err.code is Code.BAD_JSON


def test_a_lone_surrogate_escape_in_a_kept_string_is_refused() -> None:
    err = _refusal(_with_raw(["readings", 0, "device"], '"bin-\\ud800"'))
    assert (err.code, err.field) == (Code.BAD_JSON, "readings[0].device")
    err = _refusal(_with_raw(["alarm_events", 0, "evidence", "codec"], '"\\udfff"'))
    assert (err.code, err.field) == (Code.BAD_JSON, "alarm_events[0].evidence.codec")
    pair = envelope_json.loads(_with_raw(["readings", 0, "device"], '"bin-\\ud83d\\ude00"'))
    assert pair.readings[0].device_id == "bin-\N{GRINNING FACE}"


@pytest.mark.parametrize(
    "text",
    [
        "0000-01-01T00:00:00+00:00",  # year 0
        "2026-11-22T08:30:00+24:00",  # offset of a day
        "2026-11-22T08:30:00-25:00",
        "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
        "2026-13-01T00:00:00+00:00",
        "2026-11-22T08:30:00",  # no offset
        "+2026-11-22T08:30:00+00:00",
    ],
)
def test_times_that_are_not_instants_are_refused(text: str) -> None:
    err = _refusal(_with_raw(["readings", 0, "ts"], json.dumps(text)))
    assert (err.code, err.field) == (Code.SCHEMA, "readings[0].ts")


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (["readings", 0, "metric"], "5"),
        (["readings", 0, "quality"], "true"),
        (["alarm_events", 0, "state"], '["firing"]'),
        (["alarm_events", 0, "severity"], "null"),
        (["alarm_events", 0, "work_order", "priority"], '{"p": 1}'),
        (["alarm_events", 0, "seq"], "true"),
        (["alarm_events", 0, "seq"], "1.0"),
        (["schema_version"], "true"),
        (["readings", 0, "value"], '"1"'),
        (["readings", 0, "value"], "null"),
        (["alarm_events", 0, "evidence", "count"], "[1]"),
    ],
)
def test_values_of_the_wrong_type_are_schema_errors(path: list[str | int], raw: str) -> None:
    err = _refusal(_with_raw(path, raw))
    assert err.code is Code.SCHEMA
    assert err.field.endswith(str(path[-1]))


def test_a_good_reading_keeps_to_its_metric_kind() -> None:
    # Reading 1 is fill_pct (numeric), reading 0 is smoke (boolean).
    err = _refusal(_with_raw(["readings", 1, "value"], "true"))
    assert (err.code, err.field) == (Code.SCHEMA, "readings[1].value")
    assert "boolean is not a good value of numeric metric fill_pct" in err.reason
    err = _refusal(_with_raw(["readings", 0, "value"], "1"))
    assert "number is not a good value of boolean metric smoke" in err.reason
    # Flagged readings carry what the device sent (kept, never dropped): true stays a boolean.
    doc = _doc()
    doc["readings"][1].update(value=True, quality="out_of_range")
    reading = envelope_json.loads(json.dumps(doc)).readings[1]
    assert (reading.value, reading.quality) == (True, Quality.OUT_OF_RANGE)
    assert reading.value is True


# --- size limits --------------------------------------------------------------------------------


def test_the_byte_limit_is_checked_before_parsing() -> None:
    too_big = b" " * (LIMITS.max_bytes + 1)  # not even JSON: refused for its size alone
    assert _refusal(too_big).code is Code.TOO_LARGE
    assert _refusal(too_big.decode()).code is Code.TOO_LARGE
    multibyte = "\N{CJK UNIFIED IDEOGRAPH-4E00}" * (LIMITS.max_bytes // 3 + 1)
    assert _refusal(multibyte).code is Code.TOO_LARGE  # counted in UTF-8 bytes, not characters


def test_a_50_mb_gateway_id_is_refused_for_the_envelope_size() -> None:
    err = _refusal(_with_raw(["gateway_id"], json.dumps("g" * 50_000_000)))
    assert (err.code, err.field) == (Code.TOO_LARGE, "")


_STRING_LIMITS = [
    (["gateway_id"], LIMITS.gateway_id),
    (["readings", 0, "device"], LIMITS.device_id),
    (["readings", 0, "codec"], LIMITS.codec_id),
    (["alarm_events", 0, "fingerprint"], LIMITS.fingerprint),
    (["alarm_events", 0, "rule_id"], LIMITS.rule_id),
    (["alarm_events", 0, "device"], LIMITS.device_id),
    (["alarm_events", 0, "location"], LIMITS.location),
    (["alarm_events", 0, "description"], LIMITS.description),
    (["alarm_events", 0, "rule_version"], LIMITS.rule_version),
    (["alarm_events", 0, "work_order", "category"], LIMITS.category),
    (["alarm_events", 0, "suppressed", 0], LIMITS.suppressed_chars),
    (["alarm_events", 0, "evidence", "codec"], LIMITS.evidence_text_chars),
]


@pytest.mark.parametrize(("path", "limit"), _STRING_LIMITS)
def test_each_string_has_a_length_limit(path: list[str | int], limit: int) -> None:
    envelope_json.loads(_with_raw(path, json.dumps("\N{GREEK SMALL LETTER ALPHA}" * limit)))
    err = _refusal(_with_raw(path, json.dumps("a" * (limit + 1))))
    assert err.code is Code.TOO_LARGE
    assert f"longer than {limit} characters" in err.reason


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (["readings", 0, "ts"], json.dumps("2026-11-22T08:30:00+00:00" + " " * 60)),
        (["batch_id"], json.dumps("0" * 100)),
        (["readings", 0, "metric"], json.dumps("m" * 1_000_000)),
    ],
)
def test_names_and_times_are_short(path: list[str | int], raw: str) -> None:
    err = _refusal(_with_raw(path, raw))
    assert err.code is Code.TOO_LARGE
    assert len(str(err)) < 200  # the long text is not echoed back


def test_counts_are_limited() -> None:
    reading = _doc()["readings"][1]
    doc = _doc()
    doc["readings"] = [reading] * LIMITS.max_readings
    assert len(envelope_json.loads(json.dumps(doc)).readings) == LIMITS.max_readings
    doc["readings"].append(reading)
    err = _refusal(json.dumps(doc))
    assert (err.code, err.field) == (Code.TOO_LARGE, "readings")
    doc = _doc()
    required = ("fingerprint", "seq", "state", "severity", "starts_at", "at", "rule_id", "device")
    event = {key: doc["alarm_events"][0][key] for key in required}
    event.update(fingerprint="s/d/r", rule_id="r", device="d")
    doc["alarm_events"] = [event] * (LIMITS.max_alarm_events + 1)
    err = _refusal(json.dumps(doc, separators=(",", ":")))
    assert (err.code, err.field) == (Code.TOO_LARGE, "alarm_events")


def test_evidence_and_suppressions_are_flat_and_limited() -> None:
    evidence = {f"k{i}": i for i in range(LIMITS.evidence_items + 1)}
    err = _refusal(_with_raw(["alarm_events", 0, "evidence"], json.dumps(evidence)))
    assert (err.code, err.field) == (Code.TOO_LARGE, "alarm_events[0].evidence")
    key = "k" * (LIMITS.evidence_key_chars + 1)
    err = _refusal(_with_raw(["alarm_events", 0, "evidence"], json.dumps({key: 1})))
    assert (err.code, err.field) == (Code.TOO_LARGE, "alarm_events[0].evidence")
    err = _refusal(_with_raw(["alarm_events", 0, "evidence", "smoke"], '{"nested": {"x": 1}}'))
    assert (err.code, err.field) == (Code.SCHEMA, "alarm_events[0].evidence.smoke")
    flags = json.dumps(["silence"] * (LIMITS.suppressed_items + 1))
    err = _refusal(_with_raw(["alarm_events", 0, "suppressed"], flags))
    assert (err.code, err.field) == (Code.TOO_LARGE, "alarm_events[0].suppressed")


def test_an_unknown_version_has_its_own_code() -> None:
    err = _refusal(_with_raw(["schema_version"], "2"))
    assert (err.code, err.field) == (Code.UNSUPPORTED_VERSION, "schema_version")


# --- the contract, over mutated envelopes -------------------------------------------------------

_BASES = [envelope_json.dumps(_envelope(n)) for n in (0, 1, 3)]

_RAW_VALUES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e999",
    "1" + "0" * 400,
    "1" + "0" * 400 + ".0",
    "1" + "0" * 4400,
    "9223372036854775808",
    "-9223372036854775809",
    "1e308",
    "-0",
    "0.0",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    '{"k":[1,{"n":null}]}',
    "[" * 1_100 + "]" * 1_100,
    '{"a":' * 1_100 + "1" + "}" * 1_100,
    "[" * 40 + "]" * 40,
    '"\\ud800"',
    '"\\udc00x"',
    '"a\\u0000b"',
    '"0000-01-01T00:00:00+00:00"',
    '"2026-11-22T08:30:00+24:00"',
    '"0001-01-01T00:00:00+05:00"',
    '"9999-12-31T23:59:59-05:00"',
    '"2026-11-22T08:30:00"',
    '"firing"',
    '"good"',
    json.dumps("x" * 300),
    json.dumps("x" * 5_000),
    json.dumps("\u00e9" * 300),
]


def _paths(doc: object, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*path, i))
    return out


@st.composite
def _json_mutation(draw: st.DrawFn) -> bytes:
    """A valid envelope with one value (or a new field) swapped for a hostile JSON literal."""
    doc = json.loads(draw(st.sampled_from(_BASES)))
    path = draw(st.sampled_from(_paths(doc)[1:]))
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, dict) and draw(st.booleans()):
        node["extension"] = _HOLE
    else:
        node[path[-1]] = _HOLE
    raw = draw(st.sampled_from(_RAW_VALUES))
    text = json.dumps(doc, ensure_ascii=False).replace(json.dumps(_HOLE), raw)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _byte_mutation(draw: st.DrawFn) -> bytes:
    """A valid envelope with bytes flipped, inserted, cut or spliced in from another."""
    data = bytearray(draw(st.sampled_from(_BASES)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "cut", "splice", "prefix"]))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 40))]
        elif op == "splice":
            other = draw(st.sampled_from(_BASES))
            start = draw(st.integers(0, len(other) - 1))
            data[at:at] = other[start : start + draw(st.integers(1, 300))]
        else:
            data[:0] = draw(st.sampled_from([b"\xef\xbb\xbf", b"[", b"\x00", b" "]))
    return bytes(data)


def _numbers(envelope: Envelope) -> list[float]:
    out: list[float] = [float(r.value) for r in envelope.readings]
    for event in envelope.alarm_events:
        out.append(float(event.seq))
        if event.value is not None:
            out.append(float(event.value))
        out += [float(v) for v in event.evidence.values() if not isinstance(v, str)]
    return out


def _strings(envelope: Envelope) -> list[str]:
    out = [envelope.gateway_id]
    for reading in envelope.readings:
        out += [reading.device_id, reading.codec_id]
    for event in envelope.alarm_events:
        out += [event.fingerprint, event.rule_id, event.device_id, event.location]
        out += [event.description, event.rule_version, *event.suppressed]
        out += [*event.evidence, *(v for v in event.evidence.values() if isinstance(v, str))]
    return out


def _outcome(data: bytes | str) -> Envelope | EnvelopeError:
    """What `loads` made of `data`: an envelope or its refusal (anything else fails the test).

    It must be what the reference reader (`reference_loads`) makes of it too.
    """
    try:
        got: Envelope | EnvelopeError = envelope_json.loads(data)
    except EnvelopeError as err:
        got = err
    try:
        want: Envelope | EnvelopeError = envelope_json.reference_loads(data)
    except EnvelopeError as err:
        want = err
    if isinstance(got, EnvelopeError) and isinstance(want, EnvelopeError):
        assert (str(got), got.code) == (str(want), want.code)
    else:
        assert got == want
    return got


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (["readings", 1, "value"], str(2**64)),  # orjson alone would read a float
        (["readings", 1, "value"], str(2**63)),
        (["readings", 1, "value"], str(-(2**63) - 1)),
        (["readings", 1, "value"], str(2**64 - 1)),
        (["readings", 1, "value"], "0.1234567890123456789012"),
        (["readings", 1, "value"], "21"),
        (["readings", 1, "value"], "1.7976931348623157e308"),
        (["readings", 1, "value"], "1.8e308"),
        (["readings", 1, "value"], "-0.0"),
        (["readings", 1, "value"], "true"),
        (["readings", 1, "extension"], str(2**64)),
        (["readings", 1, "device"], '"dev-\ud800"'),
        (["readings", 1, "device"], '"d\u00e9v"'),
        (["readings", 1, "device"], '"' + "d" * 257 + '"'),
        (["readings", 1, "ts"], '"2026-11-22T08:30:00"'),
        (["readings", 1, "ts"], '"0001-01-01T00:00:00+01:00"'),
        (["readings", 1, "ts"], '"9999-12-31T23:59:59-01:00"'),
        (["readings", 1, "metric"], '"no_such_metric"'),
        (["readings", 1, "quality"], '"suspect"'),
        (["readings", 1], '{"device": "d", "metric": "temperature_c", "value": 1.0}'),
        (["alarm_events", 0, "seq"], str(2**64)),
        (["alarm_events", 0, "evidence", "count"], str(2**64)),
    ],
)
def test_the_fast_reader_answers_as_the_reference_reader(path: list[str | int], raw: str) -> None:
    _outcome(_with_raw(path, raw))


def test_the_fast_reader_handles_a_byte_order_mark_and_duplicate_keys_as_the_reference() -> None:
    data = _with_raw(["readings", 1, "value"], "1.5")
    _outcome(b"\xef\xbb\xbf" + data)
    _outcome(data.replace(b'"value": 1.5', b'"value": 1.5, "value": 2.5'))


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(
    data=st.one_of(_json_mutation(), _byte_mutation()),
    as_text=st.booleans(),
)
def test_mutated_envelopes_give_an_envelope_or_an_envelope_error(
    data: bytes, *, as_text: bool
) -> None:
    given_input: bytes | str = data.decode("utf-8", "surrogateescape") if as_text else data
    envelope = _outcome(given_input)
    if isinstance(envelope, EnvelopeError):
        assert isinstance(envelope.code, EnvelopeErrorCode)
        assert len(str(envelope)) < 1_000
        return
    assert all(math.isfinite(number) for number in _numbers(envelope))
    assert all(len(text) <= LIMITS.description for text in _strings(envelope))
    for text in _strings(envelope):
        text.encode()  # valid Unicode: no lone surrogate
    assert len(envelope.readings) <= LIMITS.max_readings


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet=st.characters(codec=None, categories=None), max_size=60))
def test_any_text_gives_an_envelope_or_an_envelope_error(text: str) -> None:
    with contextlib.suppress(EnvelopeError):
        envelope_json.loads(text)
