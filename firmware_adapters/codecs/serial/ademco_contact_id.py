"""Ademco Contact ID (SIA DC-05) messages as an alarm receiver prints them on a serial line.

Payload: one message `ACCT MT Q XYZ GG CCC S` as ASCII hex-digit characters (0-9, B-F; the DTMF
symbols `*#ABC` are the receiver's business), spaces between groups and a line end allowed. The
mod-15 checksum is checked (0 counts as 10; A is never valid). Message types 18 and 98 are decoded;
others raise `unsupported`, qualifiers other than 1/3/6 raise `range`.

Event codes map to canonical metrics per `firmware_adapters.panel_events` (fire/smoke 11x,
intrusion 13x incl. perimeter 131 and entry/exit 134, tamper 137/144, AC loss 301, low battery
302/384); qualifier 1 (new) and 6 (still present) give True, 3 (restore) False. Sub-device is
`<device>/zone-<CCC>`, or `<device>/user-<CCC>` for open/close events. Attributes: `account`,
`event_code`, `event`, `qualifier`, `partition`, `zone` or `user` (and `armed` for open/close).

Encoder keys: `account` (4 digits, default `1234`), `message_type` (`18`), `event_code` (3
digits), `qualifier` (1/3/6) or the event's canonical boolean (True -> 1, False -> 3), `partition`
and `zone` (int or digit string). It returns the message followed by CR LF.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.errors import EncodeError
from firmware_adapters.framing.contact_id import ContactIdFramer
from firmware_adapters.panel_events import (
    CONTACT_ID_METRICS,
    DIGITS,
    EVENT_METRICS,
    PanelEvent,
    event_attributes,
    event_readings,
    parse_contact_id,
)

CODEC_ID = "serial.ademco.contact_id"


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one Contact ID message."""
    event = parse_contact_id(CODEC_ID, frame.payload.decode("latin-1"), frame.payload)
    readings = event_readings(CODEC_ID, frame.device_id, event, frame.received_at)
    attributes = {"message_type": event.message_type, **event_attributes(event)}
    return DecodeResult(tuple(readings), (), attributes)


def field(values: Mapping[str, object], key: str, width: int, default: str) -> str:
    """Return `values[key]` as a zero-padded digit string of `width` Contact ID digits.

    Raises:
        EncodeError: not representable (too long, negative, or a digit outside 0-9/B-F).
    """
    value = values.get(key, default)
    text = (
        f"{value:0{width}d}"
        if isinstance(value, int) and not isinstance(value, bool)
        else str(value)
    )
    text = text.upper()
    if len(text) != width or any(c not in DIGITS for c in text):
        raise EncodeError(f"{key}={value!r} is not {width} Contact ID digits (0-9, B-F)")
    return text


def qualifier_of(values: Mapping[str, object], code: str) -> str:
    """The qualifier digit: explicit `qualifier`, else from the event's canonical boolean."""
    if "qualifier" in values:
        return field(values, "qualifier", 1, "1")
    for metric in EVENT_METRICS.get(code, ()):
        if metric.value in values:
            return "1" if values[metric.value] else "3"
    return "1"


def encode(values: Mapping[str, object]) -> bytes:
    """Build a Contact ID line from the keys in the module docstring."""
    code = field(values, "event_code", 3, "110")
    event = PanelEvent(
        account=field(values, "account", 4, "1234"),
        qualifier=qualifier_of(values, code),
        code=code,
        group=field(values, "partition", 2, "00"),
        zone=field(values, "zone", 3, "000"),
        message_type=field(values, "message_type", 2, "18"),
    )
    return event.message().encode("ascii") + b"\r\n"


CODEC = Codec(
    id=CODEC_ID,
    device_class=DeviceClass.ALARM_PANEL,
    description="Ademco Contact ID alarm-panel events from a receiver's serial output",
    decode=decode,
    encode=encode,
    vectors=vectors_beside(__file__),
    metrics=CONTACT_ID_METRICS,
    framer=ContactIdFramer,
)
