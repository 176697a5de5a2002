"""How outbox records are stored: compact JSON through core.envelope_json, one text per record."""

from __future__ import annotations

import json

from core.envelope_json import (
    alarm_event_from_json,
    alarm_event_to_json,
    reading_from_json,
    reading_to_json,
)
from core.types import AlarmEvent, Reading
from edge_agent.outbox.base import RecordKind

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""One compact encoder for every record (`json.dumps` with options builds one per call)."""


def encode_reading(reading: Reading) -> str:
    """Return the stored JSON text of a reading."""
    return _ENCODER.encode(reading_to_json(reading))


def encode_event(event: AlarmEvent) -> str:
    """Return the stored JSON text of an alarm event."""
    return _ENCODER.encode(alarm_event_to_json(event))


def utf8_size(text: str) -> int:
    """Return the UTF-8 length of `text` (without encoding it when it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode())


def decode_record(kind: RecordKind, text: str) -> Reading | AlarmEvent:
    """Rebuild a stored record (raises `core.errors.EnvelopeError` on a damaged one)."""
    doc = json.loads(text)
    if kind is RecordKind.ALARM:
        return alarm_event_from_json(doc)
    return reading_from_json(doc)
