"""Streaming framer for GB/T 26875.3-2011 frames (`@@ header app sum ##`)."""

from __future__ import annotations

from collections import Counter

from firmware_adapters.errors import DecodeReason
from firmware_adapters.gbt26875.frame import OVERHEAD, START, frame_problem


class Gbt26875Framer:
    """Finds `@@ ... ##` frames with a good sum in a byte stream.

    Bytes before a start marker are discarded as `malformed`; a false start (wrong version, length
    over 1024, no `##` where the length says) discards one byte and resynchronises; a frame with a
    bad sum is discarded as `checksum` up to the next start marker inside it, or whole if there is
    none: a length damaged in transit may make one frame seem to end where a later frame ends, and
    the good frames inside must not go with it. For the same reason a frame still waiting for the
    bytes its length promises is given up (as `malformed`) as soon as a complete good frame starts
    inside it, so a damaged length never holds back the frames that follow.
    """

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()

    def split(self, buf: bytes) -> tuple[int, bytes | None]:
        """Find the next frame at the start of `buf` (see `Framer`)."""
        start = buf.find(START)
        if start < 0:
            garbage = len(buf) - 1 if buf.endswith(START[:1]) else len(buf)
            if garbage:
                self.errors[DecodeReason.MALFORMED.value] += 1
            return garbage, None
        if start > 0:
            self.errors[DecodeReason.MALFORMED.value] += 1
            return start, None
        total, reason, _ = frame_problem(buf)
        if reason is DecodeReason.CHECKSUM:
            self.errors[reason.value] += 1
            inner = buf.find(START, 2, total)
            return (total if inner < 0 else inner), None
        if reason is not None:
            self.errors[reason.value] += 1
            return max(total, 1), None
        if total == 0:
            inner = _complete_frame_inside(buf)
            if inner:
                self.errors[DecodeReason.MALFORMED.value] += 1
            return inner, None
        return total, buf[:total]


def _complete_frame_inside(buf: bytes) -> int:
    """Offset of the first complete good frame after the start of `buf`, or 0 if there is none."""
    at = buf.find(START, 2)
    while 0 < at <= len(buf) - OVERHEAD:
        total, reason, _ = frame_problem(buf[at:])
        if total and reason is None:
            return at
        at = buf.find(START, at + 1)
    return 0
