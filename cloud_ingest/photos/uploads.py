"""Reading an upload's body as it streams: a raw image, or the files of a multipart form.

Each photo goes to an `Incoming` file as its bytes arrive, so memory holds one chunk at a time
whatever the body's size. Limits are checked at the byte that passes them: a photo beyond
`max_bytes`, a body beyond `cap`, more than `max_files` files, or other form fields beyond
`FIELDS_MAX` or `FIELD_BYTES_MAX` raise `PhotoTooLargeError`, and the file being written is
dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cloud_ingest.photos.multipart import (
    Event,
    MultipartReader,
    PartData,
    PartEnd,
    PartStart,
)
from cloud_ingest.photos.store import Incoming, PhotoTooLargeError, StoredPhoto

FIELD_BYTES_MAX: Final = 64 * 1024
"""The most bytes of a form's other fields, all together (they are read and ignored)."""
FIELDS_MAX: Final = 64
"""The most parts without a file in one form."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Where photos go and how much an upload may hold."""

    root: Path
    max_bytes: int
    """The largest photo."""
    max_files: int
    """The most photos in one form."""
    cap: int
    """The longest body."""


async def read_body(stream: AsyncIterator[bytes], limits: Limits) -> StoredPhoto:
    """The raw body as one photo."""
    incoming = Incoming(limits.root, limits.max_bytes)
    try:
        async for chunk in stream:
            await incoming.write(chunk)
        return await incoming.finish()
    except BaseException:
        await incoming.discard()
        raise


async def read_form(
    stream: AsyncIterator[bytes], boundary: str, limits: Limits
) -> list[StoredPhoto]:
    """The files of a multipart form (parts with a `filename`), each stored as it streams in."""
    form = _Form(limits)
    reader = MultipartReader(boundary)
    try:
        async for chunk in stream:
            form.count(len(chunk))
            for event in reader.feed(chunk):
                await form.on(event)
        reader.close()
    except BaseException:
        await form.drop()
        raise
    return form.stored


class _Form:
    """The state of one form being read: the photos stored, the one being written."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.stored: list[StoredPhoto] = []
        self.current: Incoming | None = None
        self.filename = ""
        self.files = self.fields = self.field_bytes = self.total = 0

    def count(self, size: int) -> None:
        self.total += size
        if self.total > self.limits.cap:
            raise PhotoTooLargeError(f"the body is over {self.limits.cap} bytes")

    async def on(self, event: Event) -> None:
        if isinstance(event, PartStart):
            self._start(event)
        elif isinstance(event, PartData):
            await self._data(event.data)
        elif isinstance(event, PartEnd) and self.current is not None:
            part, self.current = self.current, None
            if part.size == 0 and not self.filename:
                await part.discard()  # an empty file input: no file chosen
            else:
                self.stored.append(await part.finish())

    def _start(self, event: PartStart) -> None:
        if event.filename is None:
            self.fields += 1
            if self.fields > FIELDS_MAX:
                raise PhotoTooLargeError(f"at most {FIELDS_MAX} other fields in one upload")
            return
        self.files += 1
        if self.files > self.limits.max_files:
            raise PhotoTooLargeError(f"at most {self.limits.max_files} photos in one upload")
        self.current = Incoming(self.limits.root, self.limits.max_bytes)
        self.filename = event.filename

    async def _data(self, data: bytes) -> None:
        if self.current is not None:
            await self.current.write(data)
            return
        self.field_bytes += len(data)
        if self.field_bytes > FIELD_BYTES_MAX:
            raise PhotoTooLargeError("the form's other fields are too long")

    async def drop(self) -> None:
        if self.current is not None:
            await self.current.discard()
            self.current = None
