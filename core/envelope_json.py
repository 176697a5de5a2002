"""The one JSON (de)serializer of the uplink `Envelope` (see docs/envelope.md for the format).

Encoding writes compact JSON text. A reading, the record the gateway sends by the thousand, is
written straight to text (`reading_text`); alarm events go through `json` over a dict
(`alarm_event_text`). Both give exactly what `json.dumps(..., separators=(",", ":"),
ensure_ascii=False)` gives for `reading_to_json` / `alarm_event_to_json`. An envelope is those texts
joined (`envelope_text`), so a gateway can store each record's text once and send it later without
encoding it again. The text writers refuse, with `EnvelopeError`, anything a reader would refuse
(NaN or an infinity, a string or an integer over the limits, a time without offset), so a gateway
never stores or sends a record the cloud refuses; `sendable` sorts records out before that.

Decoding (`loads`) turns any bytes or text into an `Envelope` or raises `EnvelopeError`, nothing
else: it checks the size before parsing, parses strict UTF-8 JSON (no NaN, no infinities, integers
within 64 bits, bounded nesting) and checks every field, naming the first one that is missing, of
the wrong type or over a limit (`ENVELOPE_LIMITS`). `EnvelopeError.code` says why for machines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from json.encoder import encode_basestring
from typing import Final, TypeVar, cast
from uuid import UUID

import orjson

from core.errors import EnvelopeError, EnvelopeErrorCode
from core.metrics import CATALOG, Metric, MetricKind, Quality
from core.types import (
    ENVELOPE_LIMITS,
    SCHEMA_VERSION,
    AlarmEvent,
    AlarmState,
    Envelope,
    Priority,
    Reading,
    Scalar,
    Severity,
    WorkOrderHint,
    new_reading,
)

SUPPORTED_VERSIONS: Final = frozenset({SCHEMA_VERSION})

JsonObject = dict[str, object]
_E = TypeVar("_E", Metric, Quality, AlarmState, Severity, Priority)

_LIMITS: Final = ENVELOPE_LIMITS
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1
_GOOD: Final = Quality.GOOD
_UTC: Final = UTC
_BOOLEAN_METRICS: Final = frozenset(m for m in Metric if CATALOG[m].kind is MetricKind.BOOLEAN)

_BAD_JSON: Final = EnvelopeErrorCode.BAD_JSON
_TOO_LARGE: Final = EnvelopeErrorCode.TOO_LARGE
_TOO_DEEP: Final = EnvelopeErrorCode.TOO_DEEP
_NON_FINITE: Final = EnvelopeErrorCode.NON_FINITE
_SCHEMA: Final = EnvelopeErrorCode.SCHEMA


def reading_to_json(reading: Reading) -> JsonObject:
    """Return the JSON object of one reading (`from` only on a reading derived on the gateway)."""
    obj: JsonObject = {
        "device": reading.device_id,
        "metric": reading.metric.value,
        "value": reading.value,
        "ts": reading.ts.isoformat(),
        "quality": reading.quality.value,
        "codec": reading.codec_id,
    }
    if reading.derived_from is not None:
        obj["from"] = reading.derived_from.value
    return obj


def alarm_event_to_json(event: AlarmEvent) -> JsonObject:
    """Return the JSON object of one alarm event."""
    return {
        "fingerprint": event.fingerprint,
        "seq": event.seq,
        "state": event.state.value,
        "severity": event.severity.value,
        "starts_at": event.starts_at.isoformat(),
        "at": event.at.isoformat(),
        "rule_id": event.rule_id,
        "device": event.device_id,
        "location": event.location,
        "description": event.description,
        "valid_until": None if event.valid_until is None else event.valid_until.isoformat(),
        "value": event.value,
        "evidence": dict(event.evidence),
        "suppressed": list(event.suppressed),
        "work_order": None
        if event.work_order is None
        else {"category": event.work_order.category, "priority": event.work_order.priority.value},
        "rule_version": event.rule_version,
    }


def envelope_to_json(envelope: Envelope) -> JsonObject:
    """Return the JSON object of an envelope."""
    return {
        "schema_version": envelope.schema_version,
        "gateway_id": envelope.gateway_id,
        "batch_id": str(envelope.batch_id),
        "sent_at": envelope.sent_at.isoformat(),
        "readings": [reading_to_json(r) for r in envelope.readings],
        "alarm_events": [alarm_event_to_json(e) for e in envelope.alarm_events],
    }


# --- writing: text, checked against the limits -------------------------------------------------

_COMPACT: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""The compact encoder of every text written here (`json.dumps` with options builds one per call)."""

_CACHE_MAX: Final = 4096
_reading_heads: dict[tuple[str, Metric], tuple[str, bool]] = {}
"""(device, metric) → the text up to the value, and whether the metric is boolean."""
_reading_tails: dict[tuple[Quality, str, Metric | None], str] = {}
_last_ts: list[tuple[datetime | None, str]] = [(None, "")]


def _text(value: str, field: str, limit: int) -> str:
    """Return `value` as a JSON string, refusing one over `limit` characters or not UTF-8."""
    _check_text(value, field, limit)
    return encode_basestring(value)


def _check_text(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        reason = f"longer than {limit} characters ({len(value)})"
        raise EnvelopeError(field, reason, _TOO_LARGE)
    if not value.isascii():
        _check_unicode(value, field)


def _check_unicode(value: str, field: str) -> None:
    r"""Refuse a string that UTF-8 cannot carry (a lone surrogate, as a `\ud800` escape gives)."""
    try:
        value.encode()
    except UnicodeEncodeError as err:
        reason = f"not valid Unicode: lone surrogate at character {err.start}"
        raise EnvelopeError(field, reason, _BAD_JSON) from None


def _value_text(value: object, field: str) -> str:
    """JSON text of a reading or alarm value: a finite number within 64 bits, or a boolean."""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return int.__repr__(value)
        raise EnvelopeError(field, "integer outside the 64-bit range", _TOO_LARGE)
    if isinstance(value, float):
        if math.isfinite(value):
            return float.__repr__(value)
        raise EnvelopeError(field, f"not a finite number: {value!r}", _NON_FINITE)
    raise EnvelopeError(field, f"expected a number or boolean, got {type(value).__name__}")


def _time_text(when: datetime, field: str) -> str:
    """ISO 8601 text of an aware time that converts to UTC; anything else is refused."""
    if when.utcoffset() is None:
        raise EnvelopeError(field, "time has no UTC offset")
    if when.year in {1, 9999}:
        _in_utc_range(when, field)
    return when.isoformat()


def _in_utc_range(when: datetime, field: str) -> None:
    try:
        when.astimezone(UTC)
    except OverflowError:
        raise EnvelopeError(field, "time out of range in UTC") from None


def _reading_head(reading: Reading) -> tuple[str, bool]:
    device = _text(reading.device_id, "device", _LIMITS.device_id)
    if len(_reading_heads) >= _CACHE_MAX:
        _reading_heads.clear()
    cached = (
        f'{{"device":{device},"metric":"{reading.metric.value}","value":',
        reading.metric in _BOOLEAN_METRICS,
    )
    _reading_heads[reading.device_id, reading.metric] = cached
    return cached


def _reading_tail(reading: Reading) -> str:
    codec = _text(reading.codec_id, "codec", _LIMITS.codec_id)
    if len(_reading_tails) >= _CACHE_MAX:
        _reading_tails.clear()
    origin = f',"from":"{reading.derived_from.value}"' if reading.derived_from else ""
    tail = f'","quality":"{reading.quality.value}","codec":{codec}{origin}}}'
    _reading_tails[reading.quality, reading.codec_id, reading.derived_from] = tail
    return tail


def _kind_mismatch(metric: Metric) -> str:
    if metric in _BOOLEAN_METRICS:
        return f"a number is not a good value of boolean metric {metric.value}"
    return f"a boolean is not a good value of numeric metric {metric.value}"


def reading_text(reading: Reading) -> str:
    """Return the compact JSON text of one reading (equal to encoding `reading_to_json`).

    Raises `EnvelopeError` for a reading a reader would refuse: a value that is NaN, infinite or
    an integer beyond 64 bits, a `good` value of the wrong kind for its metric (a boolean for a
    numeric metric or a number for a boolean one), a device or codec id over its limit or not
    UTF-8, a time without offset. The parts that repeat (device and metric, quality and codec,
    the time shared by a batch) are remembered, so a busy gateway formats little more than the
    value for each reading.
    """
    cached = _reading_heads.get((reading.device_id, reading.metric))
    head, boolean = _reading_head(reading) if cached is None else cached
    value = reading.value
    kind = value.__class__
    if kind is float and value - value == 0.0:  # finite
        number = float.__repr__(value)
        is_bool = False
    elif kind is bool:
        number = "true" if value else "false"
        is_bool = True
    else:
        number = _value_text(value, "value")
        is_bool = False
    if is_bool is not boolean and reading.quality is _GOOD:
        raise EnvelopeError("value", _kind_mismatch(reading.metric))
    tail = _reading_tails.get((reading.quality, reading.codec_id, reading.derived_from))
    if tail is None:
        tail = _reading_tail(reading)
    ts = reading.ts
    last, iso = _last_ts[0]
    if ts is not last:
        # Every UTC time can be written; any other is checked (offset present, UTC in range).
        iso = ts.isoformat() if ts.tzinfo is _UTC else _time_text(ts, "ts")
        _last_ts[0] = (ts, iso)
    return f'{head}{number},"ts":"{iso}{tail}'


def _check_alarm_event(event: AlarmEvent) -> None:
    """Refuse an alarm event a reader would refuse (field names as in the JSON object)."""
    limits = _LIMITS
    _check_text(event.fingerprint, "fingerprint", limits.fingerprint)
    if isinstance(event.seq, bool) or not _INT_MIN <= event.seq <= _INT_MAX:
        raise EnvelopeError("seq", "expected an integer within 64 bits", _TOO_LARGE)
    _time_text(event.starts_at, "starts_at")
    _time_text(event.at, "at")
    _check_text(event.rule_id, "rule_id", limits.rule_id)
    _check_text(event.device_id, "device", limits.device_id)
    _check_text(event.location, "location", limits.location)
    _check_text(event.description, "description", limits.description)
    if event.valid_until is not None:
        _time_text(event.valid_until, "valid_until")
    if event.value is not None:
        _value_text(event.value, "value")
    if len(event.evidence) > limits.evidence_items:
        reason = f"more than {limits.evidence_items} entries ({len(event.evidence)})"
        raise EnvelopeError("evidence", reason, _TOO_LARGE)
    for key, item in event.evidence.items():
        _check_text(key, "evidence", limits.evidence_key_chars)
        _check_evidence_value(item, f"evidence.{key}")
    if len(event.suppressed) > limits.suppressed_items:
        reason = f"more than {limits.suppressed_items} items ({len(event.suppressed)})"
        raise EnvelopeError("suppressed", reason, _TOO_LARGE)
    for i, flag in enumerate(event.suppressed):
        _check_text(flag, f"suppressed[{i}]", limits.suppressed_chars)
    if event.work_order is not None:
        _check_text(event.work_order.category, "work_order.category", limits.category)
    _check_text(event.rule_version, "rule_version", limits.rule_version)


def _check_evidence_value(item: object, field: str) -> None:
    if isinstance(item, str):
        _check_text(item, field, _LIMITS.evidence_text_chars)
    elif isinstance(item, int | float):
        _value_text(item, field)
    else:
        raise EnvelopeError(field, f"expected a scalar, got {type(item).__name__}")


def alarm_event_text(event: AlarmEvent) -> str:
    """Return the compact JSON text of one alarm event (equal to encoding `alarm_event_to_json`).

    Raises `EnvelopeError` for an event a reader would refuse (see `reading_text`; also evidence
    or suppressions over their limits). `fit_alarm_event` repairs what can be repaired.
    """
    _check_alarm_event(event)
    return _COMPACT.encode(alarm_event_to_json(event))


def envelope_text(
    *,
    gateway_id: str,
    batch_id: UUID,
    sent_at: datetime,
    reading_texts: Iterable[str],
    event_texts: Iterable[str],
    schema_version: int = SCHEMA_VERSION,
) -> str:
    """Join record texts (from `reading_text` and `alarm_event_text`) into an envelope's JSON text.

    The records are joined as they are (they were checked when written); the caller keeps their
    number and size within `ENVELOPE_LIMITS`.
    """
    gateway = _text(gateway_id, "gateway_id", _LIMITS.gateway_id)
    return (
        f'{{"schema_version":{int(schema_version)},"gateway_id":{gateway},'
        f'"batch_id":"{batch_id}","sent_at":"{_time_text(sent_at, "sent_at")}",'
        f'"readings":[{",".join(reading_texts)}],"alarm_events":[{",".join(event_texts)}]}}'
    )


def dumps(envelope: Envelope) -> bytes:
    """Serialize an envelope to compact UTF-8 JSON (`EnvelopeError` if a reader would refuse it)."""
    _check_count(envelope.readings, "readings", _LIMITS.max_readings)
    _check_count(envelope.alarm_events, "alarm_events", _LIMITS.max_alarm_events)
    try:
        text = envelope_text(
            gateway_id=envelope.gateway_id,
            batch_id=envelope.batch_id,
            sent_at=envelope.sent_at,
            reading_texts=map(reading_text, envelope.readings),
            event_texts=map(alarm_event_text, envelope.alarm_events),
            schema_version=envelope.schema_version,
        )
    except EnvelopeError:
        _name_refused_record(envelope)
        raise
    data = text.encode()
    if len(data) > _LIMITS.max_bytes:
        reason = f"larger than {_LIMITS.max_bytes} bytes ({len(data)})"
        raise EnvelopeError("", reason, _TOO_LARGE)
    return data


_R = TypeVar("_R", Reading, AlarmEvent)


def _name_refused_record(envelope: Envelope) -> None:
    """Raise the error of the first refused record, naming it (`readings[3].value`)."""
    _records(reading_text, envelope.readings, "readings")
    _records(alarm_event_text, envelope.alarm_events, "alarm_events")


def _records(write: Callable[[_R], str], records: Sequence[_R], key: str) -> None:
    for i, record in enumerate(records):
        try:
            write(record)
        except EnvelopeError as err:
            raise EnvelopeError(_join(f"{key}[{i}]", err.field), err.reason, err.code) from None


def _check_count(items: Sequence[object], field: str, limit: int) -> None:
    if len(items) > limit:
        raise EnvelopeError(field, f"more than {limit} items ({len(items)})", _TOO_LARGE)


# --- the edge's way out: keep what an envelope can carry ----------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record the envelope format refused on its way out, and what became of it."""

    source: str
    """The reading's codec id, or `"rules"` for an alarm event (clipped, safe as a label)."""
    error: EnvelopeError
    dropped: bool
    """True if the record was left out; False for an alarm event sent repaired."""


def sendable(
    readings: Sequence[Reading], events: Sequence[AlarmEvent]
) -> tuple[list[Reading], list[AlarmEvent], list[Refusal]]:
    """Keep the records an envelope can carry; say what was refused.

    A reading the format refuses (a NaN or infinite value, an id over its limit) is dropped. An
    alarm event is repaired by `fit_alarm_event` instead, so an alarm is not lost for one bad
    evidence value; it is dropped only if it still cannot be written (a time without offset).
    """
    kept: list[Reading] = []
    refusals: list[Refusal] = []
    for reading in readings:
        try:
            reading_text(reading)
        except EnvelopeError as err:
            refusals.append(Refusal(_label(reading.codec_id), err, dropped=True))
        else:
            kept.append(reading)
    fitted: list[AlarmEvent] = []
    for event in events:
        try:
            alarm_event_text(event)
        except EnvelopeError as err:
            repaired = fit_alarm_event(event)
            try:
                alarm_event_text(repaired)
            except EnvelopeError:
                refusals.append(Refusal("rules", err, dropped=True))
                continue
            refusals.append(Refusal("rules", err, dropped=False))
            event = repaired  # noqa: PLW2901 - the repaired event replaces the refused one
        fitted.append(event)
    return kept, fitted, refusals


def _label(text: str) -> str:
    return _fit(text, 64) if text.isprintable() else "invalid"


def _fit(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, lone surrogates replaced by `?`."""
    if not text.isascii():
        text = text.encode(errors="replace").decode()
    return text[:limit]


def _fits_value(value: object) -> bool:
    try:
        _value_text(value, "")
    except EnvelopeError:
        return False
    return True


def fit_alarm_event(event: AlarmEvent) -> AlarmEvent:
    """Return `event` cut to what an envelope can carry.

    Strings are cut to their limits (lone surrogates become `?`), a value that is not a finite
    number or a boolean becomes null, evidence entries that cannot be written are left out and
    the rest cut to the entry limit, suppressions likewise. Times cannot be repaired.
    """
    limits = _LIMITS
    evidence: dict[str, Scalar] = {}
    for key, item in event.evidence.items():
        if len(evidence) >= limits.evidence_items:
            break
        if not isinstance(key, str) or len(key) > limits.evidence_key_chars:
            continue
        fitted_key = _fit(key, limits.evidence_key_chars)
        if isinstance(item, str):
            evidence[fitted_key] = _fit(item, limits.evidence_text_chars)
        elif _fits_value(item):
            evidence[fitted_key] = item
    hint = event.work_order
    if hint is not None:
        hint = WorkOrderHint(_fit(hint.category, limits.category), hint.priority)
    return replace(
        event,
        fingerprint=_fit(event.fingerprint, limits.fingerprint),
        rule_id=_fit(event.rule_id, limits.rule_id),
        device_id=_fit(event.device_id, limits.device_id),
        location=_fit(event.location, limits.location),
        description=_fit(event.description, limits.description),
        value=event.value if event.value is None or _fits_value(event.value) else None,
        evidence=evidence,
        suppressed=tuple(_fit(flag, limits.suppressed_chars) for flag in event.suppressed)[
            : limits.suppressed_items
        ],
        work_order=hint,
        rule_version=_fit(event.rule_version, limits.rule_version),
    )


# --- reading: bytes → JSON document → envelope --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Refused:
    """A number the format refuses, left in its place by the parser so its field can be named."""

    code: EnvelopeErrorCode
    reason: str


_NOT_FINITE_CONSTANT: Final = {
    name: _Refused(_NON_FINITE, f"not a finite number: {name}")
    for name in ("NaN", "Infinity", "-Infinity")
}
_HUGE_INTEGER: Final = _Refused(_TOO_LARGE, "integer outside the 64-bit range")


def _parse_int(text: str) -> int | _Refused:
    """An integer literal, or a refusal for one beyond 64 bits (checked before converting)."""
    digits = len(text) - (text[0] == "-")
    if digits > _LIMITS.max_integer_digits:
        return _HUGE_INTEGER
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else _HUGE_INTEGER


_DECODER: Final = json.JSONDecoder(
    parse_int=_parse_int, parse_constant=_NOT_FINITE_CONSTANT.__getitem__
)


def loads(data: bytes | str) -> Envelope:
    """Parse an envelope; anything that is not one raises `EnvelopeError` (and nothing else).

    The error names the offending field where there is one and carries a `code` (`too_large`,
    `too_deep`, `non_finite`, `bad_json`, `unsupported_version`, `schema`).
    """
    doc = _fast_document(data)
    if doc is not _UNPARSED:
        try:
            return _envelope_from_json(doc, reading_from_json)
        except EnvelopeError:
            pass  # refusals are the reference reader's, whichever parser ran first
    return reference_loads(data)


def reference_loads(data: bytes | str) -> Envelope:
    """`loads` through the reference paths only: the standard library's parser, the field readers.

    `loads` must give the same envelope or the same error (the fuzz suite compares them); this
    one is simpler to read and several times slower.
    """
    return _envelope_from_json(_reference_document(data), _reading_from_json)


_DIGITS_AS_ZEROS: Final = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGITS: Final = b"0" * _LIMITS.max_integer_digits
"""Input with a run of this many digits may hold an integer that orjson would turn into a float
(it reads integers beyond 64 bits as floats) where the reference parser refuses it, so it takes
the reference parser. (Mapping digits to "0" and searching is ten times faster than a regex.)"""


_UNPARSED: Final = object()


def _fast_document(data: bytes | str) -> object:
    """The document of `data` by orjson, or `_UNPARSED` for what only the reference parser reads.

    orjson parses the common case. Anything it refuses, anything that holds a run of 19 digits,
    and any envelope the checks then refuse, goes through `reference_loads`, which alone words
    and codes refusals: so `loads` answers exactly as `reference_loads` (the fuzz suite compares
    them) and never depends on which parser ran.
    """
    if data.__class__ is not bytes or len(data) > _LIMITS.max_bytes:
        return _UNPARSED
    if data.startswith(b"\xef\xbb\xbf") or _LONG_DIGITS in data.translate(_DIGITS_AS_ZEROS):
        return _UNPARSED
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _UNPARSED


def _reference_document(data: bytes | str) -> object:
    """Parse strict UTF-8 JSON within the byte limit (refused numbers are left as `_Refused`)."""
    if isinstance(data, str):
        text = data
        _check_size(len(text))  # a character is at least one byte: no need to encode a huge one
        if not text.isascii():
            try:
                _check_size(len(text.encode()))
            except UnicodeEncodeError as err:
                reason = f"not valid Unicode: lone surrogate at character {err.start}"
                raise EnvelopeError("", reason, _BAD_JSON) from None
    elif isinstance(data, bytes | bytearray):
        _check_size(len(data))
        try:
            text = data.decode()
        except UnicodeDecodeError as err:
            raise EnvelopeError("", f"not valid UTF-8 at byte {err.start}", _BAD_JSON) from None
    else:
        raise EnvelopeError("", f"expected bytes or str, got {type(data).__name__}", _BAD_JSON)
    if text.startswith("\ufeff"):
        raise EnvelopeError("", "starts with a byte order mark", _BAD_JSON)
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as err:
        raise EnvelopeError("", f"not valid JSON: {err}", _BAD_JSON) from None
    except RecursionError:
        reason = f"nested deeper than {_LIMITS.max_depth} levels"
        raise EnvelopeError("", reason, _TOO_DEEP) from None


def _check_size(size: int) -> None:
    if size > _LIMITS.max_bytes:
        raise EnvelopeError("", f"larger than {_LIMITS.max_bytes} bytes ({size})", _TOO_LARGE)


_ENVELOPE_KEYS: Final = frozenset(
    ("schema_version", "gateway_id", "batch_id", "sent_at", "readings", "alarm_events")
)
_READING_KEYS: Final = frozenset(("device", "metric", "value", "ts", "quality", "codec", "from"))
_EVENT_KEYS: Final = frozenset(
    (
        *("fingerprint", "seq", "state", "severity", "starts_at", "at", "rule_id", "device"),
        *("location", "description", "valid_until", "value", "evidence", "suppressed"),
        *("work_order", "rule_version"),
    )
)
_HINT_KEYS: Final = frozenset(("category", "priority"))


def envelope_from_json(doc: object) -> Envelope:
    """Build an envelope from a parsed JSON document (checking values as `loads` does)."""
    return _envelope_from_json(doc, reading_from_json)


def _envelope_from_json(doc: object, read_reading: Callable[[object, str], Reading]) -> Envelope:
    obj = _object(doc, "")
    version = _int(obj, "schema_version", "")
    if version not in SUPPORTED_VERSIONS:
        reason = f"unsupported version {version}; supported: {sorted(SUPPORTED_VERSIONS)}"
        raise EnvelopeError("schema_version", reason, EnvelopeErrorCode.UNSUPPORTED_VERSION)
    readings = _list(obj, "readings", "", _LIMITS.max_readings)
    events = _list(obj, "alarm_events", "", _LIMITS.max_alarm_events)
    gateway_id = _str(obj, "gateway_id", "", _LIMITS.gateway_id)
    batch_id = _uuid(obj, "batch_id", "")
    sent_at = _time(obj, "sent_at", "")
    if len(obj) > len(_ENVELOPE_KEYS):
        _check_unknown(obj, _ENVELOPE_KEYS, "", 2)
    return Envelope(
        schema_version=version,
        gateway_id=gateway_id,
        batch_id=batch_id,
        sent_at=sent_at,
        readings=tuple(read_reading(r, f"readings[{i}]") for i, r in enumerate(readings)),
        alarm_events=tuple(
            alarm_event_from_json(e, f"alarm_events[{i}]") for i, e in enumerate(events)
        ),
    )


_READING_FIELDS: Final = 6
"""The fields of a reading not derived on the gateway (no `from`)."""
_METRIC_BY_TEXT: Final = {m.value: m for m in Metric}
_QUALITY_BY_TEXT: Final = {q.value: q for q in Quality}
_FLOAT_FINITE_MAX: Final = 1.7976931348623157e308
_FROMISO: Final = datetime.fromisoformat


def reading_from_json(doc: object, path: str = "reading") -> Reading:
    """Build a reading from its JSON object; `path` prefixes field names in errors.

    The common reading (the six fields, plain ASCII names within their limits, a finite number
    or a boolean matching the metric, a time with an offset) is built by the fast path; any
    other goes through the field readers, which name what is wrong.
    """
    if doc.__class__ is dict and len(doc) == _READING_FIELDS:
        obj = cast("dict[str, object]", doc)
        device, metric_text, value = obj.get("device"), obj.get("metric"), obj.get("value")
        ts_text, quality_text, codec = obj.get("ts"), obj.get("quality"), obj.get("codec")
        if (
            device.__class__ is str
            and codec.__class__ is str
            and ts_text.__class__ is str
            and metric_text.__class__ is str
            and quality_text.__class__ is str
        ):
            metric = _METRIC_BY_TEXT.get(metric_text)
            quality = _QUALITY_BY_TEXT.get(quality_text)
            value_class = value.__class__
            if (
                metric is not None
                and quality is not None
                and len(device) <= _LIMITS.device_id
                and len(codec) <= _LIMITS.codec_id
                and len(ts_text) <= _LIMITS.name_chars
                and device.isascii()
                and codec.isascii()
                and (
                    (value_class is float and -_FLOAT_FINITE_MAX <= value <= _FLOAT_FINITE_MAX)  # type: ignore[operator]
                    or value_class is bool
                )
                and (quality is not _GOOD or (value_class is bool) is (metric in _BOOLEAN_METRICS))
            ):
                try:
                    ts = _FROMISO(ts_text)
                except ValueError:
                    ts = None
                if ts is not None and ts.tzinfo is not None and 1 < ts.year < 9999:  # noqa: PLR2004
                    return new_reading(device, metric, value, ts, quality, codec)  # type: ignore[arg-type]
    return _reading_from_json(doc, path)


def _reading_from_json(doc: object, path: str) -> Reading:
    """`reading_from_json` through the field readers."""
    obj = _object(doc, path)
    metric = _enum(obj, "metric", path, Metric)
    value = _value(obj, "value", path)
    quality = _enum(obj, "quality", path, Quality)
    if quality is _GOOD and (value.__class__ is bool) is not (metric in _BOOLEAN_METRICS):
        raise EnvelopeError(_join(path, "value"), _kind_mismatch(metric))
    derived_from = _enum(obj, "from", path, Metric) if "from" in obj else None
    reading = Reading(
        device_id=_str(obj, "device", path, _LIMITS.device_id),
        metric=metric,
        value=value,
        ts=_time(obj, "ts", path),
        quality=quality,
        codec_id=_str(obj, "codec", path, _LIMITS.codec_id),
        derived_from=derived_from,
    )
    if len(obj) > 6 + (derived_from is not None):
        _check_unknown(obj, _READING_KEYS, path, 4)
    return reading


def alarm_event_from_json(doc: object, path: str = "alarm_event") -> AlarmEvent:
    """Build an alarm event from its JSON object; `path` prefixes field names in errors."""
    limits = _LIMITS
    obj = _object(doc, path)
    valid_until = None if obj.get("valid_until") is None else _time(obj, "valid_until", path)
    value = None if obj.get("value") is None else _value(obj, "value", path)
    hint_doc = obj.get("work_order")
    hint = None
    if hint_doc is not None:
        hint_path = _join(path, "work_order")
        hint_obj = _object(hint_doc, hint_path)
        hint = WorkOrderHint(
            _str(hint_obj, "category", hint_path, limits.category),
            _enum(hint_obj, "priority", hint_path, Priority),
        )
        if len(hint_obj) > len(_HINT_KEYS):
            _check_unknown(hint_obj, _HINT_KEYS, hint_path, 5)
    event = AlarmEvent(
        fingerprint=_str(obj, "fingerprint", path, limits.fingerprint),
        seq=_int(obj, "seq", path),
        state=_enum(obj, "state", path, AlarmState),
        severity=_enum(obj, "severity", path, Severity),
        starts_at=_time(obj, "starts_at", path),
        at=_time(obj, "at", path),
        rule_id=_str(obj, "rule_id", path, limits.rule_id),
        device_id=_str(obj, "device", path, limits.device_id),
        location=_opt_str(obj, "location", path, limits.location),
        description=_opt_str(obj, "description", path, limits.description),
        valid_until=valid_until,
        value=value,
        evidence=_evidence(obj, path),
        suppressed=tuple(_str_list(obj, "suppressed", path)),
        work_order=hint,
        rule_version=_opt_str(obj, "rule_version", path, limits.rule_version),
    )
    if not obj.keys() <= _EVENT_KEYS:
        _check_unknown(obj, _EVENT_KEYS, path, 4)
    return event


# --- field readers: each raises EnvelopeError naming path.key ------------------------------------

_MISSING: Final = object()


def _join(path: str, key: str) -> str:
    if not key:
        return path
    return f"{path}.{key}" if path else key


def _wrong(value: object, field: str, expected: str) -> EnvelopeError:
    """The error for `value` found where `expected` was."""
    if value is _MISSING:
        return EnvelopeError(field, "missing field")
    if isinstance(value, _Refused):
        return EnvelopeError(field, value.reason, value.code)
    if isinstance(value, float) and not math.isfinite(value):
        return EnvelopeError(field, f"not a finite number: {value!r}", _NON_FINITE)
    return EnvelopeError(field, f"expected {expected}, got {type(value).__name__}")


def _object(doc: object, path: str) -> Mapping[str, object]:
    if not isinstance(doc, dict):
        raise _wrong(doc, path, "an object")
    return doc


def _str(obj: Mapping[str, object], key: str, path: str, limit: int) -> str:
    value = obj.get(key, _MISSING)
    if not isinstance(value, str):
        raise _wrong(value, _join(path, key), "a string")
    if len(value) > limit or not value.isascii():
        _check_text(value, _join(path, key), limit)
    return value


def _opt_str(obj: Mapping[str, object], key: str, path: str, limit: int) -> str:
    return "" if obj.get(key) is None else _str(obj, key, path, limit)


def _int(obj: Mapping[str, object], key: str, path: str) -> int:
    value = obj.get(key, _MISSING)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(value, _join(path, key), "an integer")
    if not _INT_MIN <= value <= _INT_MAX:
        raise EnvelopeError(_join(path, key), "integer outside the 64-bit range", _TOO_LARGE)
    return value


def _value(obj: Mapping[str, object], key: str, path: str) -> float | bool:
    value = obj.get(key, _MISSING)
    if isinstance(value, float):
        if value - value == 0.0:  # finite: NaN and infinities give NaN
            return value
    elif isinstance(value, bool):
        return value
    elif isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return float(value)
        raise EnvelopeError(_join(path, key), "integer outside the 64-bit range", _TOO_LARGE)
    raise _wrong(value, _join(path, key), "a number or boolean")


def _list(obj: Mapping[str, object], key: str, path: str, limit: int) -> list[object]:
    value = obj.get(key, _MISSING)
    if not isinstance(value, list):
        raise _wrong(value, _join(path, key), "a list")
    if len(value) > limit:
        reason = f"more than {limit} items ({len(value)})"
        raise EnvelopeError(_join(path, key), reason, _TOO_LARGE)
    return value


def _str_list(obj: Mapping[str, object], key: str, path: str) -> list[str]:
    if obj.get(key) is None:
        return []
    items = _list(obj, key, path, _LIMITS.suppressed_items)
    out: list[str] = []
    for i, item in enumerate(items):
        field = f"{_join(path, key)}[{i}]"
        if not isinstance(item, str):
            raise _wrong(item, field, "a string")
        _check_text(item, field, _LIMITS.suppressed_chars)
        out.append(item)
    return out


def _time(obj: Mapping[str, object], key: str, path: str) -> datetime:
    text = _str(obj, key, path, _LIMITS.name_chars)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise EnvelopeError(_join(path, key), f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        raise EnvelopeError(_join(path, key), "time has no UTC offset")
    if when.year in {1, 9999}:
        _in_utc_range(when, _join(path, key))
    return when


def _uuid(obj: Mapping[str, object], key: str, path: str) -> UUID:
    text = _str(obj, key, path, _LIMITS.name_chars)
    try:
        return UUID(text)
    except ValueError:
        raise EnvelopeError(_join(path, key), f"not a UUID: {text!r}") from None


_NOUNS: Final[dict[type, str]] = {
    Metric: "metric",
    Quality: "quality",
    AlarmState: "state",
    Severity: "severity",
    Priority: "priority",
}


_MEMBERS: Final[dict[type, dict[str, object]]] = {
    kind: {member.value: member for member in cast("type[Enum]", kind)} for kind in _NOUNS
}
"""Each enum's members by value: the common case of `_enum` is one dict lookup."""


def _enum(obj: Mapping[str, object], key: str, path: str, kind: type[_E]) -> _E:
    value = obj.get(key)
    if type(value) is str:
        member = _MEMBERS[kind].get(value)
        if member is not None:
            return cast("_E", member)
    text = _str(obj, key, path, _LIMITS.name_chars)
    try:
        return kind(text)
    except ValueError:
        expected = ", ".join(member.value for member in kind)
        reason = f"unknown {_NOUNS[kind]} {text!r}; expected one of {expected}"
        raise EnvelopeError(_join(path, key), reason) from None


def _evidence(obj: Mapping[str, object], path: str) -> dict[str, Scalar]:
    doc = obj.get("evidence")
    if doc is None:
        return {}
    field = _join(path, "evidence")
    evidence = _object(doc, field)
    limits = _LIMITS
    if len(evidence) > limits.evidence_items:
        reason = f"more than {limits.evidence_items} entries ({len(evidence)})"
        raise EnvelopeError(field, reason, _TOO_LARGE)
    out: dict[str, Scalar] = {}
    for key, value in evidence.items():
        _check_text(key, field, limits.evidence_key_chars)
        where = f"{field}.{key}"
        if isinstance(value, str):
            _check_text(value, where, limits.evidence_text_chars)
        elif isinstance(value, bool):
            pass
        elif isinstance(value, int):
            if not _INT_MIN <= value <= _INT_MAX:
                raise EnvelopeError(where, "integer outside the 64-bit range", _TOO_LARGE)
        elif not isinstance(value, float) or not math.isfinite(value):
            raise _wrong(value, where, "a scalar")
        out[key] = value
    return out


def _check_unknown(obj: Mapping[str, object], known: frozenset[str], path: str, level: int) -> None:
    """Check the fields a reader ignores: nesting within the limit and no refused number.

    `level` is the nesting level an array or object in one of those fields would be at.
    """
    stack = [(value, _join(path, key), level) for key, value in obj.items() if key not in known]
    while stack:
        node, field, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > _LIMITS.max_depth:
                reason = f"nested deeper than {_LIMITS.max_depth} levels"
                raise EnvelopeError(field, reason, _TOO_DEEP)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, field, depth + 1) for child in children)
        elif isinstance(node, _Refused) or (isinstance(node, float) and not math.isfinite(node)):
            raise _wrong(node, field, "")
