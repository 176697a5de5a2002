"""The GB/T 26875.3-2011 frame (table 1): `@@`, 25-byte header, application data unit, sum, `##`.

All multi-byte fields are little-endian. The checksum is the arithmetic sum, modulo 256, of every
byte from the serial number through the command byte plus the application data unit (the start
characters are excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum
from typing import Final

from firmware_adapters.errors import DecodeError, DecodeReason

CODEC_ID: Final = "serial.gbt26875.3"
"""GB/T 26875 part 3; the id mirrors the module path `codecs/serial/gbt26875_3.py`."""
START: Final = b"@@"
END: Final = b"##"
HEADER_LEN: Final = 27
"""Start characters plus header, up to and including the command byte."""
OVERHEAD: Final = HEADER_LEN + 3
"""Header, checksum and end characters: the size of a frame with an empty application unit."""
MAX_APP_LEN: Final = 1024
PROTOCOL_VERSION: Final = 1
_APP_LEN_AT: Final = 24
_ADDRESS_LEN: Final = 6


class Command(IntEnum):
    """The command byte (table 1, byte 27)."""

    CONTROL = 1
    SEND = 2
    CONFIRM = 3
    REQUEST = 4
    RESPONSE = 5
    DENY = 6


@dataclass(frozen=True, slots=True)
class Frame:
    """A checked frame split into its fields; `time_tag` is the raw 6-byte sec..year tag."""

    serial: int
    version: tuple[int, int]
    time_tag: bytes
    source: int
    destination: int
    command: int
    app: bytes


def checksum(body: bytes) -> int:
    """Return the frame checksum of `body` (bytes 3..27 plus the application unit)."""
    return sum(body) & 0xFF


def frame_problem(buf: bytes) -> tuple[int, DecodeReason | None, str]:  # noqa: PLR0911 - one exit per check
    """Check the frame at the start of `buf`.

    Returns:
        `(total, None, "")` for a complete good frame of `total` bytes; `(0, None, "")` when more
        bytes are needed; `(total, reason, detail)` for a bad frame, where `total` is the frame size
        when its boundaries are sound (bad checksum) and 0 when the start itself is false.
    """
    if buf[:2] != START:
        return 0, DecodeReason.MALFORMED, "frame does not start with @@"
    if len(buf) < HEADER_LEN:
        return 0, None, ""
    if buf[4] != PROTOCOL_VERSION:
        return 0, DecodeReason.MALFORMED, f"protocol version {buf[4]} is not 1"
    app_len = int.from_bytes(buf[_APP_LEN_AT : _APP_LEN_AT + 2], "little")
    if app_len > MAX_APP_LEN:
        return 0, DecodeReason.LENGTH, f"application unit length {app_len} exceeds 1024"
    total = OVERHEAD + app_len
    if len(buf) < total:
        return 0, None, ""
    if buf[total - 2 : total] != END:
        return 0, DecodeReason.MALFORMED, "frame does not end with ##"
    expected = checksum(buf[2 : total - 3])
    if buf[total - 3] != expected:
        detail = f"checksum {buf[total - 3]:#04x}, computed {expected:#04x}"
        return total, DecodeReason.CHECKSUM, detail
    return total, None, ""


def parse_frame(data: bytes) -> Frame:
    """Parse and check one complete frame.

    Raises:
        DecodeError: the bytes are not exactly one good frame.
    """
    total, reason, detail = frame_problem(data)
    if reason is not None:
        raise DecodeError(CODEC_ID, reason, detail, data)
    if total == 0:
        raise DecodeError(CODEC_ID, DecodeReason.TRUNCATED, f"frame of {len(data)} bytes", data)
    if total != len(data):
        detail = f"{len(data) - total} bytes after the end characters"
        raise DecodeError(CODEC_ID, DecodeReason.LENGTH, detail, data)
    return Frame(
        serial=int.from_bytes(data[2:4], "little"),
        version=(data[4], data[5]),
        time_tag=bytes(data[6:12]),
        source=int.from_bytes(data[12:18], "little"),
        destination=int.from_bytes(data[18:24], "little"),
        command=data[26],
        app=bytes(data[HEADER_LEN : total - 3]),
    )


def build_frame(
    *,
    serial: int,
    command: int,
    app: bytes = b"",
    time_tag: bytes = bytes(6),
    source: int = 0,
    destination: int = 0,
    user_version: int = 1,
) -> bytes:
    """Build a complete frame with checksum and delimiters.

    Raises:
        ValueError: a field does not fit its width, or the application unit exceeds 1024 bytes.
    """
    if len(app) > MAX_APP_LEN:
        raise ValueError(f"application unit of {len(app)} bytes exceeds 1024")
    if len(time_tag) != len(bytes(6)):
        raise ValueError("time tag must be 6 bytes")
    body = b"".join(
        (
            serial.to_bytes(2, "little"),
            bytes((PROTOCOL_VERSION, user_version)),
            time_tag,
            source.to_bytes(_ADDRESS_LEN, "little"),
            destination.to_bytes(_ADDRESS_LEN, "little"),
            len(app).to_bytes(2, "little"),
            bytes((command,)),
            app,
        )
    )
    return START + body + bytes((checksum(body),)) + END


def decode_time_tag(tag: bytes, offset: timedelta = timedelta(0)) -> datetime | None:
    """Turn a 6-byte `sec min hour day month year` tag into an aware UTC datetime.

    `offset` is the panel clock's offset from UTC. Returns `None` for an impossible date (a panel
    with an unset clock), so that the caller can fall back to the reception time.
    """
    sec, minute, hour, day, month, year = tag
    try:
        local = datetime(2000 + year, month, day, hour, minute, sec, tzinfo=timezone(offset))
    except ValueError:
        return None
    return local.astimezone(UTC)


def encode_time_tag(moment: datetime, offset: timedelta = timedelta(0)) -> bytes:
    """Encode an aware datetime as a 6-byte tag in the panel's local time (`offset` from UTC)."""
    local = moment.astimezone(timezone(offset))
    if not 2000 <= local.year <= 2099:  # noqa: PLR2004 - the tag holds two year digits
        raise ValueError(f"year {local.year} does not fit a GB/T 26875.3 time tag")
    return bytes(
        (local.second, local.minute, local.hour, local.day, local.month, local.year - 2000)
    )
