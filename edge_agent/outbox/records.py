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


def encode_reading(reading: Reading) -> str:
    """Return the stored JSON text of a reading."""
    return json.dumps(reading_to_json(reading), separators=(",", ":"), ensure_ascii=False)


def encode_event(event: AlarmEvent) -> str:
    """Return the stored JSON text of an alarm event."""
    return json.dumps(alarm_event_to_json(event), separators=(",", ":"), ensure_ascii=False)


def decode_record(kind: RecordKind, text: str) -> Reading | AlarmEvent:
    """Rebuild a stored record (raises `core.errors.EnvelopeError` on a damaged one)."""
    doc = json.loads(text)
    if kind is RecordKind.ALARM:
        return alarm_event_from_json(doc)
    return reading_from_json(doc)
