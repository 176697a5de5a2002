"""What the registry accepts as a site path, a name, a device kind, labels and plan coordinates.

Shared by the edit endpoints and the CSV imports, so both refuse the same things with the same
words. Every check returns the clean value or raises `ValueError` with a one-line reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from core.site import LEVELS, DeviceKind

PATH_MAX_LENGTH: Final = 1024
SEGMENT_MAX_LENGTH: Final = 128
NAME_MAX_LENGTH: Final = 256
DEVICE_ID_MAX_LENGTH: Final = 256
LABEL_KEY_MAX_LENGTH: Final = 64
LABEL_VALUE_MAX_LENGTH: Final = 256
LABELS_MAX: Final = 32
KINDS: Final = tuple(kind.value for kind in DeviceKind)


def _printable(text: str) -> bool:
    return all(ch.isprintable() for ch in text)


def check_path(text: str, *, allow_empty: bool = False) -> str:
    """A site path of whole segments (`d1/s1/c1`), without surrounding slashes.

    A segment is not empty, has no surrounding spaces, no control characters and at most
    `SEGMENT_MAX_LENGTH` characters; a path has at most one segment per level.
    """
    path = text.strip("/")
    if not path:
        if allow_empty:
            return ""
        raise ValueError("the path is empty")
    if len(path) > PATH_MAX_LENGTH:
        raise ValueError(f"the path is longer than {PATH_MAX_LENGTH} characters")
    segments = path.split("/")
    if len(segments) > len(LEVELS):
        raise ValueError(
            f"path {text!r} has {len(segments)} segments; at most {len(LEVELS)} ({'/'.join(LEVELS)})"
        )
    for segment in segments:
        if not segment:
            raise ValueError(f"path {text!r} has an empty segment")
        if segment != segment.strip():
            raise ValueError(f"path {text!r}: segment {segment!r} has surrounding spaces")
        if not _printable(segment):
            raise ValueError(f"path {text!r} has a control character")
        if len(segment) > SEGMENT_MAX_LENGTH:
            raise ValueError(f"path {text!r}: a segment is longer than {SEGMENT_MAX_LENGTH}")
    return path


def level_of(path: str) -> str:
    """The level of a checked, non-empty path: its depth in `LEVELS`."""
    return LEVELS[path.count("/")]


def parent_of(path: str) -> str | None:
    """The path one level up; `None` for a district."""
    head, sep, _ = path.rpartition("/")
    return head if sep else None


def ancestors_of(path: str) -> list[str]:
    """Every path above `path`, widest first (`a/b/c` gives `a`, `a/b`)."""
    segments = path.split("/") if path else []
    return ["/".join(segments[:n]) for n in range(1, len(segments))]


def is_within(path: str, area: str) -> bool:
    """`path` is `area` or lies below it (whole segments); every path is within `""`."""
    return not area or path == area or path.startswith(area + "/")


def check_name(text: str) -> str:
    """A site's name: not blank, printable, at most `NAME_MAX_LENGTH` characters (trimmed)."""
    name = text.strip()
    if not name:
        raise ValueError("the name is empty")
    if len(name) > NAME_MAX_LENGTH or not _printable(name):
        raise ValueError(f"the name must be 1 to {NAME_MAX_LENGTH} printable characters")
    return name


def check_device_id(text: str) -> str:
    """A device id: 1 to `DEVICE_ID_MAX_LENGTH` printable characters without spaces."""
    if not text or len(text) > DEVICE_ID_MAX_LENGTH:
        raise ValueError(f"a device id has 1 to {DEVICE_ID_MAX_LENGTH} characters")
    if not _printable(text) or any(ch.isspace() for ch in text):
        raise ValueError(f"device id {text!r} has a space or a control character")
    return text


def check_kind(text: str) -> str:
    """A device kind: one of `core.site.DeviceKind`."""
    if text not in KINDS:
        raise ValueError(f"unknown device kind {text!r}; one of {', '.join(KINDS)}")
    return text


def check_label(key: str, value: str) -> tuple[str, str]:
    """One label: a short printable key without `=` or `;`, a short printable value without `;`."""
    if not key or len(key) > LABEL_KEY_MAX_LENGTH:
        raise ValueError(f"a label key has 1 to {LABEL_KEY_MAX_LENGTH} characters: {key!r}")
    if not _printable(key) or key != key.strip() or any(ch in key for ch in "=;"):
        raise ValueError(f"label key {key!r} has a space at an end, '=', ';' or a control char")
    if len(value) > LABEL_VALUE_MAX_LENGTH or not _printable(value) or ";" in value:
        raise ValueError(
            f"label {key!r}: a value has at most {LABEL_VALUE_MAX_LENGTH} printable characters "
            "and no ';'"
        )
    return key, value


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """A flat mapping of labels, each checked by `check_label`; at most `LABELS_MAX` of them."""
    if len(labels) > LABELS_MAX:
        raise ValueError(f"at most {LABELS_MAX} labels")
    return dict(check_label(k, v) for k, v in labels.items())


def check_coordinate(value: float, name: str) -> float:
    """A finite plan coordinate."""
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return float(value)
