from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import envelope_json
from core.errors import EnvelopeError, EnvelopeErrorCode
from core.metrics import CATALOG, Metric, MetricKind, Quality
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

T0 = datetime(2026, 11, 22, 8, 30, 0, 123456, tzinfo=UTC)


def _event(seq: int = 1) -> AlarmEvent:
    return AlarmEvent(
        fingerprint="c1/smoke-01/smoke_detected",
        seq=seq,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=T0,
        at=T0 + timedelta(seconds=1),
        rule_id="smoke_detected",
        device_id="smoke-01",
        location="pudong/zhangjiang/c1/g1/c1/b2/u1",
        description="Manhole cover tilted more than 20° from its installed position.",
        valid_until=T0 + timedelta(minutes=4),
        value=True,
        evidence={"smoke": True, "smoke_pct": 12.5, "codec": "lorawan.milesight.gs524n"},
        suppressed=("maintenance",),
        work_order=WorkOrderHint(category="fire", priority=Priority.URGENT),
        rule_version="3",
    )


def _envelope() -> Envelope:
    return Envelope(
        gateway_id="gw-01",
        batch_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        sent_at=T0,
        readings=(
            Reading("bin-07", Metric.FILL_PCT, 85.5, T0, Quality.GOOD, "lorawan.dingtek.df702"),
            Reading("bin-07", Metric.FILL_PCT, 86.0, T0, Quality.GOOD, "lorawan.dingtek.df702"),
            Reading(
                "door-3", Metric.CONTACT_OPEN, value=True, ts=T0, codec_id="zigbee2mqtt.generic"
            ),
            Reading("bin-08", Metric.DISTANCE_MM, 25_000.0, T0, Quality.OUT_OF_RANGE, "x.y.z"),
        ),
        alarm_events=(_event(),),
    )


def test_round_trip_keeps_every_field() -> None:
    envelope = _envelope()
    assert envelope_json.loads(envelope_json.dumps(envelope)) == envelope


def test_same_millisecond_readings_are_both_kept() -> None:
    decoded = envelope_json.loads(envelope_json.dumps(_envelope()))
    fills = [r for r in decoded.readings if r.metric is Metric.FILL_PCT]
    assert [r.value for r in fills] == [85.5, 86.0]
    assert fills[0].ts == fills[1].ts


def test_serialized_form_is_versioned_compact_json() -> None:
    doc = json.loads(envelope_json.dumps(_envelope()))
    assert doc["schema_version"] == 1
    assert doc["readings"][0] == {
        "device": "bin-07",
        "metric": "fill_pct",
        "value": 85.5,
        "ts": "2026-11-22T08:30:00.123456+00:00",
        "quality": "good",
        "codec": "lorawan.dingtek.df702",
    }
    assert doc["alarm_events"][0]["work_order"] == {"category": "fire", "priority": "urgent"}
    assert doc["alarm_events"][0]["description"] == (
        "Manhole cover tilted more than 20° from its installed position."
    )


def test_description_round_trips_and_is_optional_on_input() -> None:
    event = _event()
    decoded = envelope_json.loads(envelope_json.dumps(_envelope())).alarm_events[0]
    assert decoded.description == event.description
    assert decoded == event
    doc = envelope_json.alarm_event_to_json(event)
    del doc["description"]
    assert envelope_json.alarm_event_from_json(doc).description == ""
    doc["description"] = None
    assert envelope_json.alarm_event_from_json(doc).description == ""


@pytest.mark.parametrize("priority", list(Priority))
def test_every_priority_name_is_read(priority: Priority) -> None:
    doc = envelope_json.alarm_event_to_json(_event())
    doc["work_order"] = {"category": "fire", "priority": priority.value}
    hint = envelope_json.alarm_event_from_json(doc).work_order
    assert hint is not None
    assert hint.priority is priority


def test_unknown_priority_names_the_field_and_the_known_names() -> None:
    with pytest.raises(EnvelopeError) as info:
        envelope_json.loads(_mutate(["alarm_events", 0, "work_order", "priority"], "P1"))
    assert str(info.value) == (
        "alarm_events[0].work_order.priority: unknown priority 'P1'; "
        "expected one of low, normal, high, urgent"
    )


def _doc() -> dict[str, object]:
    doc: dict[str, object] = json.loads(envelope_json.dumps(_envelope()))
    return doc


def _mutate(path: list[str | int], value: object, *, delete: bool = False) -> bytes:
    doc = _doc()
    node: Any = doc  # walking untyped JSON
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("path", "value", "delete", "field", "reason"),
    [
        (["schema_version"], 99, False, "schema_version", "unsupported version 99"),
        (["schema_version"], "1", False, "schema_version", "expected an integer"),
        (["gateway_id"], None, True, "gateway_id", "missing field"),
        (["batch_id"], "not-a-uuid", False, "batch_id", "not a UUID"),
        (["sent_at"], "2026-11-22T08:30:00", False, "sent_at", "no UTC offset"),
        (["readings"], {}, False, "readings", "expected a list"),
        (["readings", 2, "value"], "open", False, "readings[2].value", "number or boolean"),
        (["readings", 1, "metric"], "fill_percent", False, "readings[1].metric", "unknown metric"),
        (["readings", 0, "ts"], "yesterday", False, "readings[0].ts", "not an ISO 8601 time"),
        (["alarm_events", 0, "seq"], True, False, "alarm_events[0].seq", "expected an integer"),
        (["alarm_events", 0, "state"], "burning", False, "alarm_events[0].state", "unknown"),
        (["alarm_events", 0, "fingerprint"], None, True, "alarm_events[0].fingerprint", "missing"),
        (
            ["alarm_events", 0, "severity"],
            "P1",
            False,
            "alarm_events[0].severity",
            "unknown severity 'P1'; expected one of info, warning, critical",
        ),
        (
            ["alarm_events", 0, "work_order", "priority"],
            "P1",
            False,
            "alarm_events[0].work_order.priority",
            "unknown priority 'P1'; expected one of low, normal, high, urgent",
        ),
        (
            ["alarm_events", 0, "work_order", "priority"],
            "Urgent",
            False,
            "alarm_events[0].work_order.priority",
            "unknown priority 'Urgent'",
        ),
        (
            ["alarm_events", 0, "description"],
            42,
            False,
            "alarm_events[0].description",
            "expected a string",
        ),
        (
            ["alarm_events", 0, "evidence"],
            {"x": [1]},
            False,
            "alarm_events[0].evidence.x",
            "scalar",
        ),
        (
            ["alarm_events", 0, "work_order"],
            {"category": "fire"},
            False,
            "alarm_events[0].work_order.priority",
            "missing field",
        ),
    ],
)
def test_rejection_names_the_field(
    path: list[str | int], value: object, delete: bool, field: str, reason: str
) -> None:
    with pytest.raises(EnvelopeError) as info:
        envelope_json.loads(_mutate(path, value, delete=delete))
    assert info.value.field == field
    assert reason in info.value.reason
    assert str(info.value).startswith(field)


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"[]", b"42", b'"text"'])
def test_non_envelope_documents_are_rejected(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        envelope_json.loads(data)


_numeric = [m for m in Metric if CATALOG[m].kind is not MetricKind.BOOLEAN]
_flags = [m for m in Metric if CATALOG[m].kind is MetricKind.BOOLEAN]
_readings = st.one_of(
    st.builds(
        Reading,
        device_id=st.text(min_size=1, max_size=20),
        metric=st.sampled_from(_numeric),
        value=st.floats(allow_nan=False, allow_infinity=False),
        ts=st.datetimes(timezones=st.just(UTC)),
        quality=st.sampled_from(list(Quality)),
        codec_id=st.text(max_size=30),
    ),
    st.builds(
        Reading,
        device_id=st.text(min_size=1, max_size=20),
        metric=st.sampled_from(_flags),
        value=st.booleans(),
        ts=st.datetimes(timezones=st.just(UTC)),
        quality=st.sampled_from(list(Quality)),
        codec_id=st.text(max_size=30),
    ),
)


@settings(max_examples=200, deadline=None)
@given(readings=st.lists(_readings, max_size=20), gateway=st.text(min_size=1, max_size=20))
def test_any_envelope_round_trips(readings: list[Reading], gateway: str) -> None:
    envelope = Envelope(gateway, uuid.uuid4(), T0, tuple(readings), (_event(7),))
    assert envelope_json.loads(envelope_json.dumps(envelope)) == envelope


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_envelope_error(data: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        envelope_json.loads(data)


def _compact(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


_any_value = st.one_of(
    st.floats(),  # NaN and infinities too: the text must match `json` exactly
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
)
_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))]
)


_any_reading = st.builds(
    Reading,
    device_id=st.text(max_size=20),
    metric=st.sampled_from(list(Metric)),
    value=_any_value,
    ts=st.datetimes(timezones=_zones),
    quality=st.sampled_from(list(Quality)),
    codec_id=st.text(max_size=30),
)


def _refused_value(reading: Reading) -> bool:
    """Whether a reader would refuse the reading's value (not finite, too large, wrong kind)."""
    value: object = reading.value
    if isinstance(value, float) and not math.isfinite(value):
        return True
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return True
    boolean = CATALOG[reading.metric].kind is MetricKind.BOOLEAN
    return reading.quality is Quality.GOOD and isinstance(value, bool) is not boolean


@settings(max_examples=400, deadline=None)
@given(reading=_any_reading)
def test_reading_text_is_the_compact_json_of_the_reading(reading: Reading) -> None:
    if _refused_value(reading):
        with pytest.raises(EnvelopeError) as info:
            envelope_json.reading_text(reading)
        assert info.value.field == "value"
    else:
        text = envelope_json.reading_text(reading)
        assert text == _compact(envelope_json.reading_to_json(reading))
        # A reading's number is a float: an integer value reads back as the nearest float
        # (exact up to 2**53), a boolean as itself.
        value = reading.value
        expected = value if isinstance(value, bool | float) else float(value)
        assert envelope_json.reading_from_json(json.loads(text)).value == expected


def test_an_integer_beyond_2_to_the_53_reads_back_as_the_nearest_float() -> None:
    reading = Reading("d", Metric.DISTANCE_MM, 2**53 + 1, T0)
    text = envelope_json.reading_text(reading)
    assert '"value":9007199254740993' in text
    assert envelope_json.reading_from_json(json.loads(text)).value == float(2**53)


def test_reading_text_does_not_reuse_the_time_of_an_equal_but_other_timestamp() -> None:
    first = Reading("d", Metric.FILL_PCT, 1.0, T0)
    same_instant_other_zone = T0.astimezone(timezone(timedelta(hours=8)))
    second = Reading("d", Metric.FILL_PCT, 1.0, same_instant_other_zone)
    assert '"ts":"2026-11-22T08:30:00.123456+00:00"' in envelope_json.reading_text(first)
    assert '"ts":"2026-11-22T16:30:00.123456+08:00"' in envelope_json.reading_text(second)


def test_reading_text_stays_right_when_its_caches_overflow() -> None:
    readings = [
        Reading(f"dev-{i}", Metric.FILL_PCT, float(i), T0, codec_id=f"c{i}") for i in range(10_000)
    ]
    for reading in readings + readings[:10]:
        assert envelope_json.reading_text(reading) == _compact(
            envelope_json.reading_to_json(reading)
        )


def test_envelope_text_joins_record_texts_into_the_envelope() -> None:
    envelope = _envelope()
    text = envelope_json.envelope_text(
        gateway_id=envelope.gateway_id,
        batch_id=envelope.batch_id,
        sent_at=envelope.sent_at,
        reading_texts=[envelope_json.reading_text(r) for r in envelope.readings],
        event_texts=[envelope_json.alarm_event_text(e) for e in envelope.alarm_events],
    )
    assert text == _compact(envelope_json.envelope_to_json(envelope))
    assert envelope_json.dumps(envelope) == text.encode()


@settings(max_examples=200, deadline=None)
@given(readings=st.lists(_readings, max_size=20), gateway=st.text(min_size=1, max_size=20))
def test_dumps_is_the_compact_json_of_the_envelope(readings: list[Reading], gateway: str) -> None:
    envelope = Envelope(gateway, uuid.uuid4(), T0, tuple(readings), (_event(7), _event(8)))
    assert (
        envelope_json.dumps(envelope) == _compact(envelope_json.envelope_to_json(envelope)).encode()
    )


# --- writing refuses what a reader would refuse -------------------------------------------------


class _Float(float):
    """A float subclass, as numpy's float64 is."""


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, _Float("nan"), _Float("inf")])
def test_encoders_refuse_non_finite_numbers(value: float) -> None:
    reading = Reading("bin-07", Metric.FILL_PCT, value, T0, codec_id="x.y.z")
    with pytest.raises(EnvelopeError) as info:
        envelope_json.reading_text(reading)
    assert (info.value.code, info.value.field) == (EnvelopeErrorCode.NON_FINITE, "value")
    with pytest.raises(EnvelopeError) as info:
        envelope_json.alarm_event_text(dataclasses.replace(_event(), value=value))
    assert (info.value.code, info.value.field) == (EnvelopeErrorCode.NON_FINITE, "value")
    with pytest.raises(EnvelopeError) as info:
        envelope_json.alarm_event_text(dataclasses.replace(_event(), evidence={"rate": value}))
    assert (info.value.code, info.value.field) == (EnvelopeErrorCode.NON_FINITE, "evidence.rate")
    envelope = dataclasses.replace(_envelope(), readings=(_envelope().readings[0], reading))
    with pytest.raises(EnvelopeError) as info:
        envelope_json.dumps(envelope)
    assert info.value.field == "readings[1].value"


_naive = datetime(2026, 11, 22, 8, 30)  # noqa: DTZ001 - a time without offset, refused
_far_east_year_1 = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))


@pytest.mark.parametrize(
    ("reading", "field", "code"),
    [
        (Reading("d", Metric.FILL_PCT, 2**63, T0), "value", EnvelopeErrorCode.TOO_LARGE),
        (Reading("d" * 257, Metric.FILL_PCT, 1.0, T0), "device", EnvelopeErrorCode.TOO_LARGE),
        (Reading("d\ud800", Metric.FILL_PCT, 1.0, T0), "device", EnvelopeErrorCode.BAD_JSON),
        (Reading("d", Metric.FILL_PCT, 1.0, T0, codec_id="c" * 257), "codec", "too_large"),
        (Reading("d", Metric.FILL_PCT, 1.0, _naive), "ts", EnvelopeErrorCode.SCHEMA),
        (Reading("d", Metric.FILL_PCT, 1.0, _far_east_year_1), "ts", EnvelopeErrorCode.SCHEMA),
        (Reading("d", Metric.FILL_PCT, value=True, ts=T0), "value", EnvelopeErrorCode.SCHEMA),
        (Reading("d", Metric.SMOKE, 1.0, T0), "value", EnvelopeErrorCode.SCHEMA),
    ],
)
def test_reading_text_refuses_what_a_reader_refuses(
    reading: Reading, field: str, code: EnvelopeErrorCode
) -> None:
    with pytest.raises(EnvelopeError) as info:
        envelope_json.reading_text(reading)
    assert (info.value.field, info.value.code) == (field, code)


def test_a_flagged_reading_may_carry_a_value_of_the_other_kind() -> None:
    reading = Reading("d", Metric.FILL_PCT, value=True, ts=T0, quality=Quality.OUT_OF_RANGE)
    assert '"value":true' in envelope_json.reading_text(reading)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"description": "x" * 4097}, "description"),
        ({"fingerprint": "f" * 1025}, "fingerprint"),
        ({"location": "l\udc00"}, "location"),
        ({"evidence": {f"k{i}": i for i in range(65)}}, "evidence"),
        ({"evidence": {"k": "v" * 257}}, "evidence.k"),
        ({"evidence": {"k": [1]}}, "evidence.k"),
        ({"evidence": {"k": 2**64}}, "evidence.k"),
        ({"suppressed": ("silence",) * 17}, "suppressed"),
        ({"seq": 2**63}, "seq"),
        ({"at": _naive}, "at"),
        ({"work_order": WorkOrderHint("c" * 129, Priority.LOW)}, "work_order.category"),
    ],
)
def test_alarm_event_text_refuses_what_a_reader_refuses(change: dict[str, Any], field: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        envelope_json.alarm_event_text(dataclasses.replace(_event(), **change))
    assert info.value.field == field


def test_envelope_writers_refuse_a_long_gateway_id_and_too_many_records() -> None:
    with pytest.raises(EnvelopeError) as info:
        envelope_json.dumps(dataclasses.replace(_envelope(), gateway_id="g" * 129))
    assert (info.value.field, info.value.code) == ("gateway_id", EnvelopeErrorCode.TOO_LARGE)
    readings = (_envelope().readings[0],) * (ENVELOPE_LIMITS.max_readings + 1)
    with pytest.raises(EnvelopeError) as info:
        envelope_json.dumps(dataclasses.replace(_envelope(), readings=readings))
    assert info.value.field == "readings"


_hostile_text = st.text(st.characters(codec=None, categories=None), max_size=300)
_hostile_reading = st.builds(
    Reading,
    device_id=_hostile_text,
    metric=st.sampled_from(list(Metric)),
    value=st.one_of(st.floats(), st.booleans(), st.integers(-(2**65), 2**65)),
    ts=st.one_of(
        st.datetimes(timezones=_zones), st.datetimes(), st.sampled_from([_far_east_year_1])
    ),
    quality=st.sampled_from(list(Quality)),
    codec_id=_hostile_text,
    derived_from=st.none() | st.sampled_from(list(Metric)),
)


@settings(max_examples=300, deadline=None)
@given(reading=_hostile_reading)
def test_what_the_writer_writes_the_reader_reads(reading: Reading) -> None:
    try:
        text = envelope_json.reading_text(reading)
    except EnvelopeError:
        return
    data = envelope_json.envelope_text(
        gateway_id="gw",
        batch_id=uuid.UUID(int=1),
        sent_at=T0,
        reading_texts=[text],
        event_texts=[envelope_json.alarm_event_text(_event())],
    )
    decoded = envelope_json.loads(data.encode()).readings[0]
    expected = reading.value if isinstance(reading.value, bool) else float(reading.value)
    assert decoded == dataclasses.replace(reading, value=expected)


def test_envelope_error_has_a_code_and_keeps_its_message() -> None:
    err = EnvelopeError("readings[0].ts", "not an ISO 8601 time: 'x'")
    assert err.code is EnvelopeErrorCode.SCHEMA
    assert str(err) == "readings[0].ts: not an ISO 8601 time: 'x'"
    assert EnvelopeError("", "too big", EnvelopeErrorCode.TOO_LARGE).code == "too_large"


# --- the edge's way out ------------------------------------------------------------------------


def test_fit_alarm_event_repairs_what_it_can() -> None:
    event = dataclasses.replace(
        _event(),
        value=math.nan,
        description="d" * 5000,
        location="here\ud800",
        evidence={"rate": math.inf, "smoke": True, "k" * 200: 1, "label": "v" * 300},
        suppressed=tuple(f"s{i}" for i in range(20)),
    )
    fitted = envelope_json.fit_alarm_event(event)
    decoded = envelope_json.alarm_event_from_json(
        json.loads(envelope_json.alarm_event_text(fitted))
    )
    assert decoded.value is None
    assert decoded.evidence == {"smoke": True, "label": "v" * 256}
    assert decoded.description == "d" * 4096
    assert decoded.location == "here?"
    assert len(decoded.suppressed) == ENVELOPE_LIMITS.suppressed_items
    assert (decoded.fingerprint, decoded.seq, decoded.state) == (
        event.fingerprint,
        event.seq,
        event.state,
    )


def test_sendable_drops_refused_readings_and_repairs_alarm_events() -> None:
    good = Reading("bin-1", Metric.FILL_PCT, 1.0, T0, codec_id="lorawan.a.b")
    nan = Reading("bin-2", Metric.FILL_PCT, math.nan, T0, codec_id="lorawan.a.b")
    event = dataclasses.replace(_event(), evidence={"rate": math.nan})
    naive = dataclasses.replace(_event(2), at=_naive)
    readings, events, refusals = envelope_json.sendable([nan, good], [event, naive])
    assert readings == [good]
    assert events == [dataclasses.replace(event, evidence={})]
    assert [(r.source, r.error.code, r.dropped) for r in refusals] == [
        ("lorawan.a.b", EnvelopeErrorCode.NON_FINITE, True),
        ("rules", EnvelopeErrorCode.NON_FINITE, False),
        ("rules", EnvelopeErrorCode.SCHEMA, True),
    ]
