"""What every list endpoint of the API shares: pages, keyset cursors, times with an offset.

A list answers `{"items": [...], "next": <cursor or null>}`; times are ISO 8601 with their offset.

A cursor is the sort key of the last row of a page, as URL-safe base64 of a JSON array; the next
page holds the rows after that key in the list's order (keyset pagination: rows added meanwhile
neither shift nor repeat the pages). A cursor that does not decode is a `400` problem.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Final, Generic, TypeVar

from fastapi import HTTPException, Query
from pydantic import BaseModel, PlainSerializer, WithJsonSchema

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500

T = TypeVar("T")


def _iso(value: datetime) -> str:
    return value.isoformat()


IsoTime = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A time written as ISO 8601 with its offset (`2026-12-07T12:00:00+00:00`)."""


class Page(BaseModel, Generic[T]):
    """One page of a list: `next` is the cursor for the following page, `null` on the last."""

    items: list[T]
    next: str | None


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")]
After = Annotated[
    str | None, Query(max_length=2048, description="the `next` cursor of the previous page")
]


def encode_cursor(*key: str | int) -> str:
    """The opaque cursor for a sort key."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[object, ...]:
    """The sort key of `cursor`, checked against `types` (`str`, `int`); `400` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        key = None
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(type(k) is t for k, t in zip(key, types, strict=True))
    ):
        raise HTTPException(400, "'after' is not a cursor from this list")
    return tuple(key)


def decode_time(text: object) -> datetime:
    """A time stored in a cursor (ISO 8601 with offset); `400` if it is not one."""
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        value = None
    if value is None or value.utcoffset() is None:
        raise HTTPException(400, "'after' is not a cursor from this list")
    return value
