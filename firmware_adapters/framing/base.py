"""The framer contract shared by every serial stream format."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Final, Protocol

FIRST_WINDOW: Final = 512
"""Bytes shown to a framer at least; the window doubles while the framer asks for more bytes
than it shows and halves again after each step forward."""


class Framer(Protocol):
    """Splits a byte stream into frames without assuming one read is one frame.

    `split(buf)` looks at the start of `buf` and returns `(consumed, frame)`:
    - `(n, frame)` with `n > 0`: a complete, checked frame was found in the first `n` bytes
      (garbage before it included);
    - `(n, None)` with `n > 0`: `n` bytes of garbage or a bad frame were discarded (and counted);
    - `(0, None)`: more bytes are needed.
    Discarded chunks are counted in `errors` by reason (`DecodeReason` values).

    A framer's answer for `buf` must not change when bytes are appended to `buf` (apart from
    garbage that runs on past the end of `buf`, which may be consumed in several pieces): then a
    stream gives the same frames however it is cut into reads. A candidate frame that fails a
    check gives its bytes back to the search for the next start marker (it consumes up to that
    marker, never past it).
    """

    errors: Counter[str]

    def split(self, buf: bytes) -> tuple[int, bytes | None]:
        """Find the next frame at the start of `buf`."""
        ...


class StreamBuffer:
    """Accumulates bytes from reads of any size and yields complete frames through a framer.

    The framer sees a window at the start of the buffer that grows only while the framer needs
    more bytes, so a long read full of garbage or frames costs time in proportion to its length.
    """

    def __init__(self, framer: Framer, max_buffer: int = 65_536) -> None:
        """Wrap `framer`; a candidate frame still undecided past `max_buffer` bytes is given up."""
        self.framer = framer
        self._buf = bytearray()
        self._max = max_buffer
        self._window = FIRST_WINDOW

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Append `data` and yield every frame that is now complete.

        When the framer still waits with more than `max_buffer` bytes held, the candidate at the
        start is given up (counted as `overflow`): only its first byte is dropped, and the framer
        searches the rest again for the start of a frame.
        """
        self._buf += data
        while self._buf:
            consumed, frame = self.framer.split(bytes(self._buf[: self._window]))
            if consumed == 0:
                if self._window < len(self._buf):
                    self._window *= 2
                    continue
                if len(self._buf) <= self._max:
                    break
                self.framer.errors["overflow"] += 1
                consumed = 1
            self._window = max(FIRST_WINDOW, self._window // 2)
            del self._buf[:consumed]
            if frame is not None:
                yield frame

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a frame."""
        return len(self._buf)
