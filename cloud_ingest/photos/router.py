"""`/api/v1/photos`: upload photos (stored by content hash) and read one back.

`POST /photos` takes a `multipart/form-data` form with one or more files (every part with a
`filename`; other fields are ignored), or one photo as the raw body with `Content-Type: image/*`.
The body is read as it streams (`cloud_ingest.photos.multipart`) into temporary files, counted
as it comes: a photo past `photo_max_bytes` is a `413` problem at that byte, and a body whose
`Content-Length` already says it is too long is refused before it is read. The type is judged
from the bytes (`cloud_ingest.photos.formats`): anything but JPEG, PNG or WebP is a `415`
problem whatever `Content-Type` it was sent with; an empty file, a form without a file or an
image with impossible dimensions is a `422` problem. The answer names the first photo
(`sha256`, `size`, `type`) and lists them all under `photos`; the same bytes give the same hash
and are stored once (`201` when a file was stored, `200` when all were there already).

`GET /photos/{sha256}` serves the bytes to users who may see them (`store.visible_photo`;
anyone else gets a `404`, as for an unknown hash), with the stored type, `nosniff`,
`Cache-Control: private, immutable` (the bytes under a hash never change) and the hash as the
`ETag` (`If-None-Match` with it: `304`).

`refuse_unattachable` is the check the work-order routes run on an action's or a request's
`photos`: each must be a photo the user uploaded or may see (`422` otherwise).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.infra.config import Settings
from cloud_ingest.photos.formats import BadDimensionsError, ImageType, NotAnImageError, is_sha256
from cloud_ingest.photos.multipart import MultipartError, boundary_of
from cloud_ingest.photos.store import (
    EmptyPhotoError,
    PhotoTooLargeError,
    StoredPhoto,
    photo_path,
    record,
    unattachable,
    visible_photo,
)
from cloud_ingest.photos.uploads import FIELD_BYTES_MAX, Limits, read_body, read_form
from cloud_ingest.problems import problem
from cloud_ingest.registry.roles import Engine

router: Final = APIRouter(tags=["photos"])

EVERYONE: Final = tuple(Role)
"""Who uploads photos (technicians' results, residents' requests) and reads those they may see."""
FORM_OVERHEAD: Final = 16 * 1024
"""Bytes of delimiters and part headers allowed per photo beyond its own size."""
SHA256_PATTERN: Final = r"^[0-9a-f]{64}$"
CACHE_CONTROL: Final = "private, max-age=31536000, immutable"

_UPLOAD_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "one or more photos (any field name; a part with a file)",
                    }
                },
            }
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    },
}


class PhotoOut(BaseModel):
    """A stored photo: its name, size and type (judged from its bytes)."""

    sha256: str = Field(description="lower-case hex SHA-256 of the bytes: the photo's name")
    size: int = Field(description="bytes")
    type: str = Field(description="image/jpeg, image/png or image/webp")
    width: int | None = Field(None, description="pixels, where the header tells")
    height: int | None = Field(None, description="pixels, where the header tells")


class UploadOut(PhotoOut):
    """The first photo of the upload, and every photo of it under `photos`."""

    photos: list[PhotoOut]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _clock(request: Request) -> Clock:
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock or SystemClock()


def _out(photo: StoredPhoto) -> PhotoOut:
    info = photo.info
    return PhotoOut(
        sha256=photo.sha256,
        size=photo.size,
        type=info.type.value,
        width=info.width,
        height=info.height,
    )


@router.post(
    "/photos",
    dependencies=[require(*EVERYONE)],
    summary="Upload photos (multipart form, or one image as the body); stored by SHA-256",
    status_code=201,
    response_model=UploadOut,
    responses={
        200: {"model": UploadOut, "description": "Every photo was stored already (the same bytes)"},
        400: {"description": "A malformed multipart body"},
        413: {"description": "A photo larger than `photo_max_bytes`, or too many photos"},
        415: {"description": "Not a JPEG, PNG or WebP image (judged by its bytes)"},
        422: {"description": "An empty file, no file, or impossible image dimensions"},
    },
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def upload_photos(request: Request, engine: Engine, user: CurrentUser) -> Response:
    """Store each photo under its hash and give the uploader a row for it."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.partition(";")[0].strip().lower()
    limits = _limits(request, multipart=kind == "multipart/form-data")
    if kind != "multipart/form-data" and not kind.startswith("image/"):
        raise HTTPException(415, "send multipart/form-data or image/*")
    try:
        if kind == "multipart/form-data":
            stored = await read_form(request.stream(), boundary_of(content_type), limits)
        else:
            stored = [await read_body(request.stream(), limits)]
    except _REFUSALS as err:
        status = next(code for kind, code in _STATUSES.items() if isinstance(err, kind))
        return problem(status, str(err), instance=request.url.path)
    if not stored:
        raise HTTPException(422, "the form holds no file")
    await record(engine, user, stored, _clock(request).now())
    items = [_out(photo) for photo in stored]
    body = UploadOut(**items[0].model_dump(), photos=items)
    status = HTTPStatus.CREATED if any(photo.new for photo in stored) else HTTPStatus.OK
    return JSONResponse(body.model_dump(), status_code=status)


_STATUSES: Final[dict[type[Exception], HTTPStatus]] = {
    MultipartError: HTTPStatus.BAD_REQUEST,
    PhotoTooLargeError: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    NotAnImageError: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    EmptyPhotoError: HTTPStatus.UNPROCESSABLE_ENTITY,
    BadDimensionsError: HTTPStatus.UNPROCESSABLE_ENTITY,
}
_REFUSALS: Final = tuple(_STATUSES)


def _limits(request: Request, *, multipart: bool) -> Limits:
    """The upload's limits; `413` at once when `Content-Length` is already beyond them."""
    settings = _settings(request)
    files = settings.photo_max_files if multipart else 1
    cap = files * (settings.photo_max_bytes + FORM_OVERHEAD) + (FIELD_BYTES_MAX if multipart else 0)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"the body is over {cap} bytes")
    return Limits(settings.photo_root, settings.photo_max_bytes, settings.photo_max_files, cap)


@router.get(
    "/photos/{sha256}",
    dependencies=[require(*EVERYONE)],
    summary="A photo's bytes, to those who may see it",
    response_class=FileResponse,
    responses={
        200: {"content": {t.value: {} for t in ImageType}, "description": "The photo"},
        304: {"description": "`If-None-Match` names the photo's ETag (its hash): not sent again"},
        404: {"description": "No such photo, or not one the user may see"},
    },
)
async def get_photo(
    request: Request,
    engine: Engine,
    user: CurrentUser,
    sha256: Annotated[
        str, Path(pattern=SHA256_PATTERN, description="lower-case hex SHA-256 of the photo")
    ],
) -> Response:
    """The bytes, with their type, `nosniff` and `Cache-Control: private, immutable`."""
    async with engine.connect() as conn:
        row = await visible_photo(conn, user, sha256)
    if row is None:
        raise HTTPException(404, "no such photo")
    path = photo_path(_settings(request).photo_root, sha256)
    if not path.is_file():
        raise HTTPException(404, "the photo's file is missing")
    etag = f'"{sha256}"'
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "ETag": etag,
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=str(row["type"]), headers=headers)


async def refuse_unattachable(engine: AsyncEngine, user: User, hashes: list[str]) -> None:
    """`422` unless every hash of `hashes` names a photo `user` uploaded or may see."""
    malformed = [h for h in hashes if not is_sha256(h)]
    if malformed:
        raise HTTPException(
            422, f"not photo hashes (64 lower-case hex digits): {', '.join(malformed[:5])}"
        )
    refused = await unattachable(engine, user, hashes)
    if refused:
        raise HTTPException(
            422,
            f"no uploaded photo of these hashes (POST /api/v1/photos): {', '.join(refused[:5])}",
        )
