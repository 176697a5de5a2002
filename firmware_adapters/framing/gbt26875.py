"""Streaming framer for GB/T 26875.3 frames (`@@ header app sum ##`)."""

from __future__ import annotations

from collections import Counter

from firmware_adapters.errors import DecodeReason
from firmware_adapters.gbt26875.frame import OVERHEAD, START, frame_problem


class Gbt26875Framer:
    """Finds `@@ ... ##` frames with a good sum in a byte stream.

    Bytes before a start marker are discarded as `malformed`. A candidate frame that fails a
    check (wrong version, length over 1024, no `##` where the length says, bad sum) is discarded
    by reason up to the next start marker after its own, never past it: a length damaged in
    transit may make one frame seem to end where a later frame ends, and the frames inside must
    not go with it. A candidate that holds a complete good frame after its start is not a frame
    either, even when its sum matches by chance; it is discarded as `length` as soon as that
    inner frame is complete, so a damaged length never holds back the frames that follow.
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
        if reason is None and _holds_a_frame(buf[: total or len(buf)]):
            reason = DecodeReason.LENGTH
        if reason is not None:
            self.errors[reason.value] += 1
            return _next_start(buf), None
        if total == 0:
            return 0, None
        return total, buf[:total]


def _next_start(buf: bytes) -> int:
    """Bytes before the next start marker after the start of `buf`.

    All of `buf` when there is none, except a last `@` that may begin one.
    """
    at = buf.find(START, 1)
    if at >= 0:
        return at
    return len(buf) - 1 if buf.endswith(START[:1]) else len(buf)


def _holds_a_frame(candidate: bytes) -> bool:
    """Whether a complete good frame starts after the first byte of `candidate` and ends in it."""
    at = candidate.find(START, 1)
    while 0 < at <= len(candidate) - OVERHEAD:
        total, reason, _ = frame_problem(candidate[at:])
        if total and reason is None:
            return True
        at = candidate.find(START, at + 1)
    return False
