"""The framer contract shared by every serial stream format."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Protocol


class Framer(Protocol):
    """Splits a byte stream into frames without assuming one read is one frame.

    `split(buf)` looks at the start of `buf` and returns `(consumed, frame)`:
    - `(n, frame)` with `n > 0`: a complete, checked frame was found in the first `n` bytes
      (garbage before it included);
    - `(n, None)` with `n > 0`: `n` bytes of garbage or a bad frame were discarded (and counted);
    - `(0, None)`: more bytes are needed.
    Discarded chunks are counted in `errors` by reason (`DecodeReason` values).
    """

    errors: Counter[str]

    def split(self, buf: bytes) -> tuple[int, bytes | None]:
        """Find the next frame at the start of `buf`."""
        ...


class StreamBuffer:
    """Accumulates bytes from reads of any size and yields complete frames through a framer."""

    def __init__(self, framer: Framer, max_buffer: int = 65_536) -> None:
        """Wrap `framer`; more than `max_buffer` unframed bytes are discarded as garbage."""
        self.framer = framer
        self._buf = bytearray()
        self._max = max_buffer

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Append `data` and yield every frame that is now complete."""
        self._buf += data
        while self._buf:
            consumed, frame = self.framer.split(bytes(self._buf))
            if consumed == 0:
                if len(self._buf) > self._max:
                    self.framer.errors["overflow"] += 1
                    self._buf.clear()
                break
            del self._buf[:consumed]
            if frame is not None:
                yield frame

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a frame."""
        return len(self._buf)
