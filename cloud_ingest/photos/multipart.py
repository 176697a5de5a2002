"""A streaming `multipart/form-data` reader (RFC 7578): parts come out as the bytes come in.

`MultipartReader(boundary).feed(chunk)` returns the events the chunk completes: `PartStart`
(the part's field name, file name and declared type), `PartData` (a piece of its body) and
`PartEnd`. Nothing is held but the current headers (at most `MAX_HEADER_BYTES`) and the few
bytes that might begin a delimiter, so a photo of any size passes through in constant memory
and the caller counts, hashes and stores it on the way. `close()` checks that the final
delimiter was seen. Malformed input (no delimiter in the first bytes, headers too long or
without `Content-Disposition`, a body cut short) raises `MultipartError`.

Pure: bytes in, events out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

MAX_HEADER_BYTES: Final = 8 * 1024
"""The longest header block of one part."""
MAX_PREAMBLE_BYTES: Final = 1024
"""How far into the body the first delimiter must be."""
_BOUNDARY: Final = re.compile(r"""boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))""", re.IGNORECASE)
_PARAM: Final = re.compile(r"""(\w+)\*?=(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))""")


class MultipartError(ValueError):
    """The body is not well-formed `multipart/form-data` (the API answers `400`)."""


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part begins: its form field `name`, the `filename` if a file, its declared type."""

    name: str
    filename: str | None
    content_type: str


@dataclass(frozen=True, slots=True)
class PartData:
    """A piece of the current part's body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part ended."""


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str) -> str:
    """The boundary of a `multipart/form-data; boundary=...` type; `MultipartError` without."""
    kind = content_type.partition(";")[0].strip().lower()
    found = _BOUNDARY.search(content_type)
    if kind != "multipart/form-data" or found is None:
        raise MultipartError("expected multipart/form-data with a boundary")
    return found.group(1) or found.group(2)


class _State(Enum):
    PREAMBLE = auto()
    AFTER_DELIMITER = auto()
    HEADERS = auto()
    BODY = auto()
    DONE = auto()


class MultipartReader:
    """Parses one `multipart/form-data` body fed in chunks (see the module docstring)."""

    def __init__(self, boundary: str) -> None:
        """Read parts separated by `--boundary`."""
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        self._buffer = b"\r\n"  # so the first delimiter is found as every other one
        self._state = _State.PREAMBLE

    @property
    def done(self) -> bool:
        """Whether the final delimiter was read."""
        return self._state is _State.DONE

    def feed(self, chunk: bytes) -> list[Event]:
        """The events `chunk` completes (bytes after the final delimiter are ignored)."""
        if self._state is _State.DONE:
            return []
        self._buffer += chunk
        events: list[Event] = []
        while True:
            step = self._step(events)
            if not step:
                return events

    def close(self) -> None:
        """Check that the body ended with its final delimiter."""
        if self._state is not _State.DONE:
            raise MultipartError("the multipart body ends before its final delimiter")

    def _step(self, events: list[Event]) -> bool:
        """Advance through the buffer once; `False` when more bytes are needed."""
        if self._state is _State.PREAMBLE:
            return self._preamble()
        if self._state is _State.AFTER_DELIMITER:
            return self._after_delimiter()
        if self._state is _State.HEADERS:
            return self._headers(events)
        if self._state is _State.BODY:
            return self._body(events)
        return False

    def _preamble(self) -> bool:
        at = self._buffer.find(self._delimiter)
        if at < 0:
            if len(self._buffer) > MAX_PREAMBLE_BYTES:
                raise MultipartError("no multipart delimiter at the start of the body")
            return False
        self._buffer = self._buffer[at + len(self._delimiter) :]
        self._state = _State.AFTER_DELIMITER
        return True

    def _headers(self, events: list[Event]) -> bool:
        at = self._buffer.find(b"\r\n\r\n")
        if at < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise MultipartError("a part's headers are too long")
            return False
        events.append(_part_start(self._buffer[:at]))
        self._buffer = self._buffer[at + 4 :]
        self._state = _State.BODY
        return True

    def _body(self, events: list[Event]) -> bool:
        buffer = self._buffer
        at = buffer.find(self._delimiter)
        if at >= 0:
            if at:
                events.append(PartData(buffer[:at]))
            events.append(PartEnd())
            self._buffer = buffer[at + len(self._delimiter) :]
            self._state = _State.AFTER_DELIMITER
            return True
        keep = len(self._delimiter) - 1  # a delimiter may begin in the last bytes
        if len(buffer) > keep:
            events.append(PartData(buffer[:-keep]))
            self._buffer = buffer[-keep:]
        return False

    def _after_delimiter(self) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:  # noqa: PLR2004
            return False
        if buffer.startswith(b"--"):
            self._state = _State.DONE
            self._buffer = b""
            return False
        line_end = buffer.find(b"\r\n")
        if line_end < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                raise MultipartError("a multipart delimiter is followed by garbage")
            return False
        if buffer[:line_end].strip(b" \t"):  # only transport padding may follow a delimiter
            raise MultipartError("a multipart delimiter is followed by garbage")
        self._buffer = buffer[line_end + 2 :]
        self._state = _State.HEADERS
        return True


def _part_start(block: bytes) -> PartStart:
    """The `PartStart` of a part's header block (`Content-Disposition: form-data; name=...`)."""
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", errors="replace").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition")
    if disposition is None or disposition.partition(";")[0].strip().lower() != "form-data":
        raise MultipartError("a part without 'Content-Disposition: form-data'")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(disposition.partition(";")[2]):
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params.setdefault(match.group(1).lower(), value)
    content_type = headers.get("content-type", "text/plain" if "filename" not in params else "")
    return PartStart(params.get("name", ""), params.get("filename"), content_type)
