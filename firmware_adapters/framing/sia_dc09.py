"""SIA DC-09 message layer: CRC-16/ARC, the `LF CRC 0LLL body CR` frame, and a streaming framer.

The body runs from the first `"` to the last character before CR: `"ID"seq[Rrcvr]Lline[#acct][data]
[x-data][_HH:MM:SS,MM-DD-YYYY]`. `LLL` is the body length in hex, the CRC covers the body and is
printed as four upper-case hex digits (both are read case-insensitively).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Final

from firmware_adapters.errors import DecodeError, DecodeReason

LF: Final = 0x0A
CR: Final = 0x0D
HEAD_LEN: Final = 9
"""LF, four CRC digits and four length digits."""
MAX_BODY: Final = 0xFFF


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE: Final = _crc_table()


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (reflected polynomial 0xA001, initial value 0) of `data`."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def build_message(body: str) -> bytes:
    """Wrap a body into a complete `LF CRC 0LLL body CR` message."""
    raw = body.encode("ascii")
    if len(raw) > MAX_BODY:
        raise ValueError(f"DC-09 body of {len(raw)} bytes exceeds {MAX_BODY}")
    return b"\n%04X%04X%s\r" % (crc16_arc(raw), len(raw), raw)


_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")


def message_problem(buf: bytes) -> tuple[int, DecodeReason | None, str]:  # noqa: PLR0911 - one exit per check
    """Check the message at the start of `buf` (which starts with LF).

    Returns:
        `(total, None, "")` for a good message, `(0, None, "")` when more bytes are needed, and
        `(total, reason, detail)` for a bad one (`total` is 0 when the start itself is false).
    """
    if len(buf) < HEAD_LEN:
        return 0, None, ""
    if not (_HEX4.fullmatch(buf[1:5]) and _HEX4.fullmatch(buf[5:9]) and buf[5:6] == b"0"):
        return 0, DecodeReason.MALFORMED, "no CRC and 0LLL length after LF"
    total = HEAD_LEN + int(buf[5:9], 16) + 1
    early_cr = buf.find(b"\r", HEAD_LEN, total - 1)
    if early_cr >= 0:
        # A body never holds CR: the message ended before its length field says.
        return early_cr + 1, DecodeReason.LENGTH, "CR before the end the length field gives"
    if len(buf) < total:
        return 0, None, ""
    if buf[total - 1] != CR:
        return 0, DecodeReason.LENGTH, "length field does not end at CR"
    body = buf[HEAD_LEN : total - 1]
    crc = crc16_arc(body)
    if int(buf[1:5], 16) != crc:
        return total, DecodeReason.CHECKSUM, f"CRC {buf[1:5].decode()}, computed {crc:04X}"
    return total, None, ""


@dataclass(frozen=True, slots=True)
class Message:
    """The parts of a checked DC-09 body."""

    id: str
    sequence: str
    receiver: str
    line: str
    account: str
    data: str
    extended: str
    timestamp: str


_BODY = re.compile(
    r'"(?P<id>\*?[^"*]+)"(?P<sequence>\d{4})(?:R(?P<receiver>[0-9A-Fa-f]{1,6}))?'
    r"L(?P<line>[0-9A-Fa-f]{1,6})(?:#(?P<account>[0-9A-Fa-f]{3,16}))?"
    r"\[(?P<data>[^\]]*)\](?P<extended>(?:\[[^\]]*\])*)(?:_(?P<timestamp>[^\r]*))?"
)


def parse_message(codec_id: str, payload: bytes, *, allow_encrypted: bool = False) -> Message:
    """Check and split one complete message (leading LF and trailing CR optional).

    With `allow_encrypted`, an encrypted message is split too (its data stays hex ciphertext),
    so that a receiver can echo its sequence and account in a reply.

    Raises:
        DecodeError: bad header, length, CRC (`checksum`), encrypted content (`unsupported`), or a
            body that does not follow the grammar (`malformed`).
    """
    framed = payload if payload[:1] == b"\n" else b"\n" + payload
    framed = framed if framed[-1:] == b"\r" else framed + b"\r"
    total, reason, detail = message_problem(framed)
    if reason is DecodeReason.LENGTH and total == len(framed) and not payload.endswith(b"\r"):
        reason = DecodeReason.TRUNCATED  # the CR that ended it early is the one added here
    if reason is None and total == 0:
        # Without its CR the message was cut; with it, the length field is wrong.
        reason = DecodeReason.LENGTH if payload.endswith(b"\r") else DecodeReason.TRUNCATED
        detail = f"message of {len(framed)} bytes is shorter than its length field"
    elif reason is None and total != len(framed):
        reason, detail = DecodeReason.LENGTH, f"length field says {total} bytes, got {len(framed)}"
    if reason is not None:
        raise DecodeError(codec_id, reason, detail, payload)
    body = framed[HEAD_LEN:-1].decode("latin-1")
    if body.startswith('"*') and not allow_encrypted:
        raise DecodeError(codec_id, DecodeReason.UNSUPPORTED, "encrypted (*) message", payload)
    match = _BODY.fullmatch(body)
    if match is None:
        raise DecodeError(codec_id, DecodeReason.MALFORMED, f"body {body!r}", payload)
    return Message(**{k: v or "" for k, v in match.groupdict().items()})


class SiaDc09Framer:
    """Finds `LF ... CR` DC-09 messages with a good length and CRC in a byte stream.

    Bytes before an LF are discarded as `malformed`. A candidate message that fails a check (no
    hex header after its LF, a CR before the end its length field gives, no CR at that end, a
    bad CRC) is discarded by reason up to the next LF, never past it, so a message cut off in
    transit does not take the message after it along. A body never holds CR, so a candidate
    whose length field runs over a later complete message is given up as soon as that message's
    CR arrives (never held back waiting for the bytes its length promises). A candidate whose
    length field ends exactly at a later message's CR with a CRC that matches by chance is
    discarded as `length` when that later message is itself good.
    """

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()

    def split(self, buf: bytes) -> tuple[int, bytes | None]:
        """Find the next message at the start of `buf` (see `Framer`)."""
        start = buf.find(b"\n")
        if start != 0:
            garbage = len(buf) if start < 0 else start
            self.errors[DecodeReason.MALFORMED.value] += 1
            return garbage, None
        total, reason, _ = message_problem(buf)
        if reason is None and total and _holds_a_message(buf[:total]):
            reason = DecodeReason.LENGTH
        if reason is not None:
            self.errors[reason.value] += 1
            return _next_start(buf), None
        if total == 0:
            return 0, None
        return total, buf[:total]


def _next_start(buf: bytes) -> int:
    """Bytes before the next LF after the start of `buf` (all of `buf` if there is none)."""
    at = buf.find(b"\n", 1)
    return len(buf) if at < 0 else at


def _holds_a_message(candidate: bytes) -> bool:
    """Whether a good message other than `candidate` itself ends at its CR."""
    at = candidate.find(b"\n", HEAD_LEN)
    while at >= 0:
        total, reason, _ = message_problem(candidate[at:])
        if reason is None and total == len(candidate) - at:
            return True
        at = candidate.find(b"\n", at + 1)
    return False
