"""Streaming framer for Contact ID messages, one per line (CR, LF or CRLF terminated).

A line is a frame when its last 16 non-space characters form a valid message (digits 0-9 and
B-F, mod-15 checksum); characters before those are garbage and counted as `malformed`. Lines
without a valid message are discarded and counted by reason (`checksum`, `length`, `malformed`,
...). Empty lines are separators, not errors.

The framer never looks further than `MAX_LINE + 1` bytes ahead. A longer run without a line end
is trimmed (counted as `length`) to the bytes that could still hold the end of a message: from
the 16th-last non-space character on. Spaces do not count towards the message, so the frame a
line gives does not depend on how the stream was cut into reads.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.panel_events import MESSAGE_LEN, parse_contact_id

MAX_LINE: Final = 256
"""A longer run without a line end is trimmed to its last 16 non-space characters."""
_EOL: Final = b"\r\n"
_FRAMER_ID: Final = "framing.contact_id"


class ContactIdFramer:
    """Splits a byte stream into 16-digit Contact ID messages (without the line end)."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()

    def split(self, buf: bytes) -> tuple[int, bytes | None]:
        """Find the next message at the start of `buf` (see `Framer`)."""
        head = buf[: MAX_LINE + 1]
        skip = len(head) - len(head.lstrip(_EOL))
        if skip:
            return skip, None
        end = min((i for i in (head.find(b"\r"), head.find(b"\n")) if i >= 0), default=-1)
        if end < 0:
            if len(head) > MAX_LINE:
                self.errors[DecodeReason.LENGTH.value] += 1
                return _message_tail_start(head), None
            return 0, None
        line = head[:end].decode("latin-1")
        digits = "".join(line.split())
        tail = digits[-MESSAGE_LEN:]
        try:
            parse_contact_id(_FRAMER_ID, tail, head[:end])
        except DecodeError as err:
            self.errors[err.reason.value] += 1
            return end + 1, None
        if len(digits) > MESSAGE_LEN:
            self.errors[DecodeReason.MALFORMED.value] += 1
        return end + 1, tail.encode("ascii")


def _message_tail_start(run: bytes) -> int:
    """Where the last 16 non-space characters of `run` (a line without its end) begin; at least 1.

    Bytes before that can no longer be part of the message the line ends with, and neither can
    the first byte: the run is longer than a message and has no line end yet. With fewer than 16
    non-space characters after the first byte, only the spaces before them go.
    """
    text = run.decode("latin-1")
    start, seen = len(text), 0
    for at in range(len(text) - 1, 0, -1):
        if not text[at].isspace():
            start, seen = at, seen + 1
            if seen == MESSAGE_LEN:
                break
    return start
