"""Streaming framer for GB/T 26875.3-2011 frames (`@@ header app sum ##`)."""

from __future__ import annotations

from collections import Counter

from firmware_adapters.errors import DecodeReason
from firmware_adapters.gbt26875.frame import START, frame_problem


class Gbt26875Framer:
    """Finds `@@ ... ##` frames with a good sum in a byte stream.

    Bytes before a start marker are discarded as `malformed`; a false start (wrong version, length
    over 1024, no `##` where the length says) discards one byte and resynchronises; a frame with a
    bad sum is discarded whole as `checksum`.
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
        if reason is not None:
            self.errors[reason.value] += 1
            return max(total, 1), None
        if total == 0:
            return 0, None
        return total, buf[:total]
