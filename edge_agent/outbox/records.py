"""How outbox records are stored: each record's envelope JSON text, from core.envelope_json.

A record is encoded once, when it is put; the uplink joins the stored texts into an envelope
(`core.envelope_json.envelope_text`) without decoding or encoding them again.
"""

from __future__ import annotations

import json

from core.envelope_json import (
    alarm_event_from_json,
    alarm_event_text,
    reading_from_json,
    reading_text,
)
from core.types import AlarmEvent, Reading

encode_reading = reading_text
"""The stored text of a reading."""

encode_event = alarm_event_text
"""The stored text of an alarm event."""


def utf8_size(text: str) -> int:
    """Return the UTF-8 length of `text` (without encoding it when it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode())


def decode_reading(text: str) -> Reading:
    """Rebuild a stored reading (raises `core.errors.EnvelopeError` or ValueError on a damaged one)."""
    return reading_from_json(json.loads(text))


def decode_event(text: str) -> AlarmEvent:
    """Rebuild a stored alarm event (raises `core.errors.EnvelopeError` or ValueError if damaged)."""
    return alarm_event_from_json(json.loads(text))
