"""The one JSON (de)serializer of the uplink `Envelope` (see docs/envelope.md for the format).

Encoding writes compact JSON text. A reading, the record the gateway sends by the thousand, is
written straight to text (`reading_text`); alarm events go through `json` over a dict
(`alarm_event_text`). Both give exactly what `json.dumps(..., separators=(",", ":"),
ensure_ascii=False)` gives for `reading_to_json` / `alarm_event_to_json`. An envelope is those texts
joined (`envelope_text`), so a gateway can store each record's text once and send it later without
encoding it again. Decoding checks every field and raises `EnvelopeError` naming the first field
that is missing or of the wrong type, so a bad message is rejected with a clear reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from json.encoder import encode_basestring
from typing import Final, TypeVar
from uuid import UUID

from core.errors import EnvelopeError
from core.metrics import Metric, Quality
from core.types import (
    SCHEMA_VERSION,
    AlarmEvent,
    AlarmState,
    Envelope,
    Priority,
    Reading,
    Scalar,
    Severity,
    WorkOrderHint,
)

SUPPORTED_VERSIONS: Final = frozenset({SCHEMA_VERSION})

JsonObject = dict[str, object]
_E = TypeVar("_E", Metric, Quality, AlarmState, Severity, Priority)


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


_COMPACT: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""The compact encoder of every text written here (`json.dumps` with options builds one per call)."""

_CACHE_MAX: Final = 4096
_reading_heads: dict[tuple[str, Metric], str] = {}
_reading_tails: dict[tuple[Quality, str, Metric | None], str] = {}
_last_ts: list[tuple[datetime | None, str]] = [(None, "")]


def _number_text(value: float | bool) -> str:  # noqa: FBT001 - a value, not a flag
    """JSON text of a reading value, as `json` writes it (NaN and infinities included)."""
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is float and value - value == 0.0:  # finite
        return float.__repr__(value)
    return _COMPACT.encode(value)


def reading_text(reading: Reading) -> str:
    """Return the compact JSON text of one reading (equal to encoding `reading_to_json`).

    The parts that repeat (device and metric, quality and codec, the time shared by a batch) are
    remembered, so a busy gateway formats little more than the value for each reading.
    """
    head = _reading_heads.get((reading.device_id, reading.metric))
    if head is None:
        if len(_reading_heads) >= _CACHE_MAX:
            _reading_heads.clear()
        head = f'{{"device":{encode_basestring(reading.device_id)},"metric":"{reading.metric.value}","value":'
        _reading_heads[reading.device_id, reading.metric] = head
    tail_key = (reading.quality, reading.codec_id, reading.derived_from)
    tail = _reading_tails.get(tail_key)
    if tail is None:
        if len(_reading_tails) >= _CACHE_MAX:
            _reading_tails.clear()
        origin = f',"from":"{reading.derived_from.value}"' if reading.derived_from else ""
        tail = (
            f'","quality":"{reading.quality.value}","codec":'
            f"{encode_basestring(reading.codec_id)}{origin}}}"
        )
        _reading_tails[tail_key] = tail
    ts = reading.ts
    last, iso = _last_ts[0]
    if ts is not last:
        iso = ts.isoformat()
        _last_ts[0] = (ts, iso)
    return f'{head}{_number_text(reading.value)},"ts":"{iso}{tail}'


def alarm_event_text(event: AlarmEvent) -> str:
    """Return the compact JSON text of one alarm event (equal to encoding `alarm_event_to_json`)."""
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
    """Join record texts (from `reading_text` and `alarm_event_text`) into an envelope's JSON text."""
    return (
        f'{{"schema_version":{int(schema_version)},"gateway_id":{encode_basestring(gateway_id)},'
        f'"batch_id":"{batch_id}","sent_at":"{sent_at.isoformat()}",'
        f'"readings":[{",".join(reading_texts)}],"alarm_events":[{",".join(event_texts)}]}}'
    )


def dumps(envelope: Envelope) -> bytes:
    """Serialize an envelope to compact UTF-8 JSON."""
    return envelope_text(
        gateway_id=envelope.gateway_id,
        batch_id=envelope.batch_id,
        sent_at=envelope.sent_at,
        reading_texts=map(reading_text, envelope.readings),
        event_texts=map(alarm_event_text, envelope.alarm_events),
        schema_version=envelope.schema_version,
    ).encode()


def loads(data: bytes | str) -> Envelope:
    """Parse an envelope, raising `EnvelopeError` that names the offending field."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EnvelopeError("", f"not valid JSON: {err}") from err
    return envelope_from_json(doc)


def envelope_from_json(doc: object) -> Envelope:
    """Build an envelope from a parsed JSON document."""
    obj = _object(doc, "")
    version = _int(obj, "schema_version", "")
    if version not in SUPPORTED_VERSIONS:
        reason = f"unsupported version {version}; supported: {sorted(SUPPORTED_VERSIONS)}"
        raise EnvelopeError("schema_version", reason)
    readings = _list(obj, "readings", "")
    events = _list(obj, "alarm_events", "")
    return Envelope(
        schema_version=version,
        gateway_id=_str(obj, "gateway_id", ""),
        batch_id=_uuid(obj, "batch_id", ""),
        sent_at=_time(obj, "sent_at", ""),
        readings=tuple(reading_from_json(r, f"readings[{i}]") for i, r in enumerate(readings)),
        alarm_events=tuple(
            alarm_event_from_json(e, f"alarm_events[{i}]") for i, e in enumerate(events)
        ),
    )


def reading_from_json(doc: object, path: str = "reading") -> Reading:
    """Build a reading from its JSON object; `path` prefixes field names in errors."""
    obj = _object(doc, path)
    metric = _enum(obj, "metric", path, Metric)
    return Reading(
        device_id=_str(obj, "device", path),
        metric=metric,
        value=_value(obj, "value", path),
        ts=_time(obj, "ts", path),
        quality=_enum(obj, "quality", path, Quality),
        codec_id=_str(obj, "codec", path),
        derived_from=_enum(obj, "from", path, Metric) if "from" in obj else None,
    )


def alarm_event_from_json(doc: object, path: str = "alarm_event") -> AlarmEvent:
    """Build an alarm event from its JSON object; `path` prefixes field names in errors."""
    obj = _object(doc, path)
    valid_until = None if obj.get("valid_until") is None else _time(obj, "valid_until", path)
    value = None if obj.get("value") is None else _value(obj, "value", path)
    hint_doc = obj.get("work_order")
    hint = None
    if hint_doc is not None:
        hint_obj = _object(hint_doc, _join(path, "work_order"))
        hint_path = _join(path, "work_order")
        hint = WorkOrderHint(
            _str(hint_obj, "category", hint_path),
            _enum(hint_obj, "priority", hint_path, Priority),
        )
    return AlarmEvent(
        fingerprint=_str(obj, "fingerprint", path),
        seq=_int(obj, "seq", path),
        state=_enum(obj, "state", path, AlarmState),
        severity=_enum(obj, "severity", path, Severity),
        starts_at=_time(obj, "starts_at", path),
        at=_time(obj, "at", path),
        rule_id=_str(obj, "rule_id", path),
        device_id=_str(obj, "device", path),
        location=_opt_str(obj, "location", path),
        description=_opt_str(obj, "description", path),
        valid_until=valid_until,
        value=value,
        evidence=_evidence(obj, path),
        suppressed=tuple(_str_list(obj, "suppressed", path)),
        work_order=hint,
        rule_version=_opt_str(obj, "rule_version", path),
    )


# --- field readers: each raises EnvelopeError naming path.key ------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(doc: object, path: str) -> Mapping[str, object]:
    if not isinstance(doc, dict):
        raise EnvelopeError(path, f"expected an object, got {type(doc).__name__}")
    return doc


def _get(obj: Mapping[str, object], key: str, path: str) -> object:
    if key not in obj:
        raise EnvelopeError(_join(path, key), "missing field")
    return obj[key]


def _str(obj: Mapping[str, object], key: str, path: str) -> str:
    value = _get(obj, key, path)
    if not isinstance(value, str):
        raise EnvelopeError(_join(path, key), f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(obj: Mapping[str, object], key: str, path: str) -> str:
    return "" if obj.get(key) is None else _str(obj, key, path)


def _int(obj: Mapping[str, object], key: str, path: str) -> int:
    value = _get(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnvelopeError(_join(path, key), f"expected an integer, got {type(value).__name__}")
    return value


def _value(obj: Mapping[str, object], key: str, path: str) -> float | bool:
    value = _get(obj, key, path)
    if isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return float(value)
    raise EnvelopeError(
        _join(path, key), f"expected a number or boolean, got {type(value).__name__}"
    )


def _list(obj: Mapping[str, object], key: str, path: str) -> list[object]:
    value = _get(obj, key, path)
    if not isinstance(value, list):
        raise EnvelopeError(_join(path, key), f"expected a list, got {type(value).__name__}")
    return value


def _str_list(obj: Mapping[str, object], key: str, path: str) -> list[str]:
    if obj.get(key) is None:
        return []
    items = _list(obj, key, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise EnvelopeError(f"{_join(path, key)}[{i}]", "expected a string")
    return [str(item) for item in items]


def _time(obj: Mapping[str, object], key: str, path: str) -> datetime:
    text = _str(obj, key, path)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise EnvelopeError(_join(path, key), f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        raise EnvelopeError(_join(path, key), "time has no UTC offset")
    return when


def _uuid(obj: Mapping[str, object], key: str, path: str) -> UUID:
    text = _str(obj, key, path)
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


def _enum(obj: Mapping[str, object], key: str, path: str, kind: type[_E]) -> _E:
    text = _str(obj, key, path)
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
    evidence = _object(doc, _join(path, "evidence"))
    out: dict[str, Scalar] = {}
    for key, value in evidence.items():
        if not isinstance(value, str | int | float | bool):
            raise EnvelopeError(_join(path, f"evidence.{key}"), "expected a scalar")
        out[key] = value
    return out
