"""Streaming framer for Contact ID messages, one per line (CR, LF or CRLF terminated).

A line is a frame when its last 16 non-space characters form a valid message (digits 0-9 and
B-F, mod-15 checksum); characters before those are garbage and counted as `malformed`. Lines
without a valid message are discarded and counted by reason (`checksum`, `length`, `malformed`,
...). Empty lines are separators, not errors.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.panel_events import MESSAGE_LEN, parse_contact_id

MAX_LINE: Final = 256
"""A longer run without a line end is discarded as `length`."""
_EOL: Final = b"\r\n"
_FRAMER_ID: Final = "framing.contact_id"


class ContactIdFramer:
    """Splits a byte stream into 16-digit Contact ID messages (without the line end)."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()

    def split(self, buf: bytes) -> tuple[int, bytes | None]:
        """Find the next message at the start of `buf` (see `Framer`)."""
        skip = len(buf) - len(buf.lstrip(_EOL))
        if skip:
            return skip, None
        end = min((i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0), default=-1)
        if end < 0:
            if len(buf) > MAX_LINE:
                self.errors[DecodeReason.LENGTH.value] += 1
                return len(buf), None
            return 0, None
        line = buf[:end].decode("latin-1")
        digits = "".join(line.split())
        tail = digits[-MESSAGE_LEN:]
        try:
            parse_contact_id(_FRAMER_ID, tail, buf[:end])
        except DecodeError as err:
            self.errors[err.reason.value] += 1
            return end + 1, None
        if len(digits) > MESSAGE_LEN:
            self.errors[DecodeReason.MALFORMED.value] += 1
        return end + 1, tail.encode("ascii")
