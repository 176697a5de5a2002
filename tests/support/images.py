"""Small valid images as bytes, for the photo uploads of tests."""

from __future__ import annotations

import struct
import zlib


def png(width: int = 2, height: int = 1, salt: bytes = b"") -> bytes:
    """A valid PNG of `width` x `height` grey pixels (`salt` in a text chunk makes other bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    text = chunk(b"tEXt", b"note\x00" + salt) if salt else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + text
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
