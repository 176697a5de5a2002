"""Photos on disk by content hash, their rows, and who may see them.

**Files.** A photo is stored once, under the photo directory, as `ab/cd/<sha256>` (two levels
of the hash's first hex digits, so no directory grows past 65,536 entries). `Incoming` receives
an upload in a temporary file under `.incoming/` of the same directory while it counts,
hashes and keeps the first bytes; `finish()` judges the type from those bytes
(`cloud_ingest.photos.formats`) and moves the file to its name with one `os.replace`, or drops
it when that name exists already (the same bytes, stored once). A path is only ever built from
a checked hex hash, never from what a client sent.

**Rows.** `photos` holds one row per photo and uploader (who may attach it, and to whom it
belongs): hash, size, type, width and height where known, the uploader, the uploader's
company and when. The same bytes uploaded by two people are one file and two rows.

**Who sees a photo** (`visible_photo`), in one place:

| user | sees |
| --- | --- |
| admin | every photo |
| its uploader | their own uploads |
| staff of a company (not a resident) | the uploads of anyone of their company |
| anyone | the photos that events of an order they see name as evidence (`evidence.photos`): |
|  | staff the orders of their scope (`work_orders.store.visible_orders`), a resident their requests |

An order's event names a photo in its `evidence` JSON; it is found by its hash as text (a
checked 64-digit hex string, so no `LIKE` wildcard can be in it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

import anyio.to_thread
from sqlalchemy import ColumnElement, Exists, String, cast, or_, select, true
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.infra.schema import photos, work_order_events, work_orders
from cloud_ingest.photos.formats import (
    HEAD_BYTES,
    MAGIC_BYTES,
    ImageInfo,
    image_type,
    is_sha256,
    sniff,
)
from cloud_ingest.work_orders.store import visible_orders

INCOMING: Final = ".incoming"
"""The directory, under the photo directory, of uploads still arriving."""
WRITE_BYTES: Final = 1024 * 1024
"""Bytes received are written to the file in pieces of about this size (one thread hop each)."""


class PhotoTooLargeError(ValueError):
    """An upload went past the size limit (the API answers `413`)."""


class EmptyPhotoError(ValueError):
    """An upload of no bytes (the API answers `422`)."""


@dataclass(frozen=True, slots=True)
class StoredPhoto:
    """A photo on disk: its hash, size and what it is; `new`: this upload stored the file."""

    sha256: str
    size: int
    info: ImageInfo
    new: bool


def photo_path(root: Path, sha256: str) -> Path:
    """Where the photo `sha256` lies under `root` (`ValueError` unless a hex SHA-256)."""
    if not is_sha256(sha256):
        raise ValueError("not a photo hash (64 lower-case hex digits)")
    return root / sha256[:2] / sha256[2:4] / sha256


class Incoming:
    """One upload on its way to the photo directory `root`, at most `max_bytes` long.

    Its first bytes are held until they tell the type: something that is not an image is
    refused before anything is written to disk.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        """Receive into a temporary file under `root/.incoming` (made on the first image bytes)."""
        self.root = root
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._file: BinaryIO | None = None
        self._temp: Path | None = None
        self._unwritten = bytearray()

    async def write(self, data: bytes) -> None:
        """Append `data`; `PhotoTooLargeError` beyond `max_bytes`, `NotAnImageError` at once."""
        self.size += len(data)
        if self.size > self.max_bytes:
            raise PhotoTooLargeError(f"a photo may have at most {self.max_bytes} bytes")
        self._hash.update(data)
        if len(self._head) < HEAD_BYTES:
            self._head += data[: HEAD_BYTES - len(self._head)]
        if self._file is None:
            if len(self._head) < MAGIC_BYTES:
                return
            image_type(bytes(self._head))  # not an image: refused before it touches the disk
            await anyio.to_thread.run_sync(self._open)
            data = bytes(self._head) if self.size <= HEAD_BYTES else self._pending(data)
        self._unwritten += data
        if len(self._unwritten) >= WRITE_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._unwritten:
            data, self._unwritten = bytes(self._unwritten), bytearray()
            await anyio.to_thread.run_sync(self._write, data)

    def _pending(self, data: bytes) -> bytes:
        """Everything received so far, when the file is opened after the head was filled."""
        return bytes(self._head) + data[HEAD_BYTES - (self.size - len(data)) :]

    def _open(self) -> None:
        incoming = self.root / INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=incoming, prefix="upload-")
        self._file = os.fdopen(descriptor, "wb")
        self._temp = Path(name)

    def _write(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)

    async def finish(self) -> StoredPhoto:
        """Judge the bytes and move them to their name (`NotAnImageError`, `EmptyPhotoError`).

        The temporary file is dropped whatever happens.
        """
        try:
            if self.size == 0:
                raise EmptyPhotoError("the file is empty")  # noqa: TRY301
            info = sniff(bytes(self._head))
            if self._file is None:  # shorter than the magic bytes: held until now
                await anyio.to_thread.run_sync(self._open)
                self._unwritten += self._head
            await self._flush()
            await anyio.to_thread.run_sync(self._close)
        except BaseException:
            await self.discard()
            raise
        sha256 = self._hash.hexdigest()
        target = photo_path(self.root, sha256)
        new = await anyio.to_thread.run_sync(self._place, target)
        return StoredPhoto(sha256, self.size, info, new)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _place(self, target: Path) -> bool:
        assert self._temp is not None  # noqa: S101 - finish() opened it
        if target.exists():
            self._temp.unlink(missing_ok=True)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        self._temp.replace(target)
        return True

    async def discard(self) -> None:
        """Drop the temporary file (after a refused or unfinished upload)."""

        def drop() -> None:
            self._close()
            if self._temp is not None:
                self._temp.unlink(missing_ok=True)

        await anyio.to_thread.run_sync(drop)


async def record(
    engine: AsyncEngine, user: User, found: Iterable[StoredPhoto], now: datetime
) -> None:
    """Give `user` a row for each photo in `found` (one they have already is kept as it is)."""
    async with engine.begin() as conn:
        for photo in found:
            if await _has_row(conn, photo.sha256, user.name):
                continue
            row = {
                "sha256": photo.sha256,
                "uploader": user.name,
                "company": user.company,
                "size": photo.size,
                "type": photo.info.type.value,
                "width": photo.info.width,
                "height": photo.info.height,
                "created_at": now,
            }
            try:
                async with conn.begin_nested():
                    await conn.execute(photos.insert().values(row))
            except IntegrityError:  # the same upload, racing in another request
                continue


async def _has_row(conn: AsyncConnection, sha256: str, uploader: str) -> bool:
    query = select(photos.c.sha256).where(photos.c.sha256 == sha256, photos.c.uploader == uploader)
    return (await conn.execute(query)).first() is not None


def _in_evidence(sha256: str, user: User) -> Exists:
    """An event of an order `user` sees names `sha256` in its evidence."""
    e, o = work_order_events.c, work_orders.c
    quoted = f'%"{sha256}"%'
    return (
        select(e.id)
        .join(work_orders, o.id == e.order_id)
        .where(visible_orders(user), cast(e.evidence, String).like(quoted))
        .exists()
    )


async def visible_photo(conn: AsyncConnection, user: User, sha256: str) -> RowMapping | None:
    """The row (type, size) of the photo `sha256` if `user` may see it (module docstring)."""
    if not is_sha256(sha256):
        return None
    p = photos.c
    allowed: ColumnElement[bool]
    if user.sees_everything:
        allowed = true()
    else:
        mine = p.uploader == user.name
        company = user.company and user.role is not Role.RESIDENT
        allowed = or_(mine, p.company == user.company) if company else mine
        allowed = or_(allowed, _in_evidence(sha256, user))
    query = (
        select(p.sha256, p.type, p.size)
        .where(p.sha256 == sha256, allowed)
        .order_by(p.created_at)
        .limit(1)
    )
    return (await conn.execute(query)).mappings().first()


async def unattachable(engine: AsyncEngine, user: User, hashes: Iterable[str]) -> list[str]:
    """The photo hashes among `hashes` that `user` may not attach: not uploaded, or not theirs to see."""
    wanted = list(dict.fromkeys(hashes))
    if not wanted:
        return []
    async with engine.connect() as conn:
        return [h for h in wanted if await visible_photo(conn, user, h) is None]
