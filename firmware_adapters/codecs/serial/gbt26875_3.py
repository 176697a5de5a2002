"""GB/T 26875.3-2011 user information transmission device (fire-alarm panel uplink).

Payload: one complete frame (`@@ ... ##`) as the framer delivers it; the sum, length and delimiters
are checked. `meta["unit"] = "app"` instead marks a bare application data unit (as the standard's
examples print it). `meta["utc_offset"]` (`+08:00`) gives the panel clock's zone; time tags are UTC
otherwise. Each object's time tag is the reading time; an impossible tag falls back to the reception
time with a warning.

Status words (types 1, 2, 21) give `fire_alarm`, `fault`, `power_fault` and `self_test` per
sub-device (bit0 set = normal per the standard, DEVICE_PROTOCOLS.md §7); analog values of types 3
(temperature) and 6 (gas %LEL) give `temperature_c` and `gas_lel_pct`, other analog types, operation
records, versions, configuration and clocks become attributes. Sub-device ids and attribute keys are
documented in `firmware_adapters.gbt26875.readings`; encoder keys in `firmware_adapters.gbt26875.builder`.
Frames without an application unit (confirm, deny) decode to no readings.

Receivers must answer every `send data` frame with `confirm_reply(frame)`.
"""

from __future__ import annotations

from datetime import datetime

from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from firmware_adapters.gbt26875.builder import encode_values, parse_offset
from firmware_adapters.gbt26875.frame import (
    CODEC_ID,
    Command,
    Frame,
    build_frame,
    encode_time_tag,
    parse_frame,
)
from firmware_adapters.gbt26875.objects import decode_unit
from firmware_adapters.gbt26875.readings import ObjectMapper
from firmware_adapters.gbt26875.semantics import METRICS


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one frame (or a bare application unit) into readings and attributes."""
    try:
        offset = parse_offset(frame.meta.get("utc_offset", "+00:00"))
    except ValueError as err:
        raise DecodeError(CODEC_ID, DecodeReason.MALFORMED, f"meta {err}", frame.payload) from err
    attributes: dict[str, str | int | float | bool] = {}
    if frame.meta.get("unit") == "app":
        app = frame.payload
    else:
        parsed = parse_frame(frame.payload)
        app = parsed.app
        attributes.update(
            command=parsed.command,
            serial=parsed.serial,
            source=f"{parsed.source:012x}",
            destination=f"{parsed.destination:012x}",
        )
    mapper = ObjectMapper(frame.device_id, frame.received_at, offset)
    if app:
        kind, objects = decode_unit(app)
        attributes["info_type"] = kind
        for obj in objects:
            mapper.add(obj)
    attributes.update(mapper.attributes)
    return DecodeResult(tuple(mapper.readings), tuple(mapper.warnings), attributes)


def _reply(frame: bytes, command: Command, now: datetime | None) -> bytes:
    received: Frame = parse_frame(frame)
    return build_frame(
        serial=received.serial,
        command=command,
        time_tag=received.time_tag if now is None else encode_time_tag(now),
        source=received.destination,
        destination=received.source,
        user_version=received.version[1],
    )


def confirm_reply(frame: bytes, now: datetime | None = None) -> bytes:
    """Build the confirm (command 3) a receiver sends back for `frame`.

    The serial number is echoed, source and destination are swapped, the application unit is empty;
    the time tag is `now` (UTC) or, when absent, the received frame's tag.

    Raises:
        DecodeError: `frame` is not one good frame.
    """
    return _reply(frame, Command.CONFIRM, now)


def deny_reply(frame: bytes, now: datetime | None = None) -> bytes:
    """Build the deny (command 6) reply for a frame the receiver cannot accept (see `confirm_reply`)."""
    return _reply(frame, Command.DENY, now)


CODEC = Codec(
    id=CODEC_ID,
    device_class=DeviceClass.FIRE_PANEL,
    description="GB/T 26875.3-2011 fire-alarm transmission device: system/component status, analog values, operations",
    decode=decode,
    encode=encode_values,
    vectors=vectors_beside(__file__),
    metrics=METRICS,
    framer=Gbt26875Framer,
)
