"""What a stored photo is, judged from its first bytes: JPEG, PNG or WebP, and its size in pixels.

The type is read from the magic bytes alone (a declared `Content-Type` is never trusted): JPEG
starts `FF D8 FF`, PNG with its 8-byte signature, WebP with `RIFF....WEBP`. The dimensions are
read where they are cheap: PNG's `IHDR` (always the first chunk), WebP's `VP8 `, `VP8L` or
`VP8X` header, and JPEG's first start-of-frame marker within the bytes given (after its EXIF
and other segments; not found there: unknown, and the photo is still accepted). A width or
height of 0, or more than `MAX_SIDE` pixels, or more than `MAX_PIXELS` in all, is not a photo
a browser should be asked to decode.

Pure functions over bytes; the caller hands the first `HEAD_BYTES` of the upload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

HEAD_BYTES: Final = 64 * 1024
"""How much of a photo's start is judged (enough for the JPEG frame header after most EXIF)."""
MAX_SIDE: Final = 20_000
"""The longest side, in pixels, of an accepted photo."""
MAX_PIXELS: Final = 120_000_000
"""The most pixels of an accepted photo (a phone camera takes up to about 50 million)."""
SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
"""A photo's name: the lower-case hex SHA-256 of its bytes."""

_PNG: Final = b"\x89PNG\r\n\x1a\n"
_JPEG: Final = b"\xff\xd8\xff"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...); not DHT, JPG, DAC.
_SOF: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE})
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
"""JPEG markers without a length (TEM, RSTn)."""


class ImageType(StrEnum):
    """An accepted photo's media type."""

    JPEG = "image/jpeg"
    PNG = "image/png"
    WEBP = "image/webp"


class NotAnImageError(ValueError):
    """The bytes are not a JPEG, PNG or WebP image (the API answers `415`)."""


class BadDimensionsError(ValueError):
    """The image's header claims a size no photo has (the API answers `422`)."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """A photo's type and, where its header tells cheaply, its width and height in pixels."""

    type: ImageType
    width: int | None = None
    height: int | None = None


def is_sha256(text: str) -> bool:
    """Whether `text` is a photo's name (64 lower-case hex digits, nothing else)."""
    return SHA256_HEX.fullmatch(text) is not None


MAGIC_BYTES: Final = 12
"""Bytes enough to tell the type (`image_type`): WebP's `RIFF....WEBP` is the longest."""


def image_type(head: bytes) -> ImageType:
    """The type of the image starting with `head` (its first `MAGIC_BYTES`); `NotAnImageError`."""
    if head.startswith(_PNG):
        return ImageType.PNG
    if head.startswith(_JPEG):
        return ImageType.JPEG
    if len(head) >= MAGIC_BYTES and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageType.WEBP
    raise NotAnImageError("not a JPEG, PNG or WebP image (judged by its first bytes)")


def sniff(head: bytes) -> ImageInfo:
    """The type and dimensions of the image starting with `head`.

    Raises `NotAnImageError` unless `head` starts like a JPEG, PNG or WebP image, and
    `BadDimensionsError` when the dimensions found are zero or beyond `MAX_SIDE`/`MAX_PIXELS`.
    """
    kind = image_type(head)
    if kind is ImageType.PNG:
        info = _png(head)
    elif kind is ImageType.JPEG:
        info = ImageInfo(ImageType.JPEG, *_jpeg_size(head))
    else:
        info = _webp(head)
    _check_dimensions(info)
    return info


def _check_dimensions(info: ImageInfo) -> None:
    if info.width is None or info.height is None:
        return
    if not (0 < info.width <= MAX_SIDE and 0 < info.height <= MAX_SIDE):
        raise BadDimensionsError(f"an image of {info.width}x{info.height} pixels is not a photo")
    if info.width * info.height > MAX_PIXELS:
        raise BadDimensionsError(
            f"{info.width}x{info.height} pixels is more than {MAX_PIXELS:,} in all"
        )


def _png(head: bytes) -> ImageInfo:
    # signature, then the IHDR chunk: length (13), b"IHDR", width, height (big-endian)
    if len(head) < 24 or head[12:16] != b"IHDR":  # noqa: PLR2004
        raise NotAnImageError("a PNG signature without its IHDR header")
    width = int.from_bytes(head[16:20], "big")
    height = int.from_bytes(head[20:24], "big")
    return ImageInfo(ImageType.PNG, width, height)


def _webp(head: bytes) -> ImageInfo:
    chunk = head[12:16]
    body = head[20:]
    if chunk == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":  # noqa: PLR2004
        width = int.from_bytes(body[6:8], "little") & 0x3FFF
        height = int.from_bytes(body[8:10], "little") & 0x3FFF
        return ImageInfo(ImageType.WEBP, width, height)
    if chunk == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:  # noqa: PLR2004
        bits = int.from_bytes(body[1:5], "little")
        return ImageInfo(ImageType.WEBP, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(body) >= 10:  # noqa: PLR2004
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
        return ImageInfo(ImageType.WEBP, width, height)
    raise NotAnImageError("a RIFF WEBP container without a VP8, VP8L or VP8X header")


def _jpeg_size(head: bytes) -> tuple[int | None, int | None]:
    """(width, height) of the first start-of-frame segment within `head`; unknown if beyond."""
    at = 2
    while at + 4 <= len(head):
        if head[at] != 0xFF:  # noqa: PLR2004
            return None, None  # not at a marker: entropy-coded data or a damaged file
        marker = head[at + 1]
        if marker == 0xFF:  # noqa: PLR2004 - fill byte
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        length = int.from_bytes(head[at + 2 : at + 4], "big")
        if marker in _SOF:
            if at + 9 > len(head):
                return None, None
            height = int.from_bytes(head[at + 5 : at + 7], "big")
            width = int.from_bytes(head[at + 7 : at + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:  # noqa: PLR2004 - start of scan before any frame
            return None, None
        at += 2 + length
    return None, None
