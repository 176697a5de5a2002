"""Seeded, pure-Python mutations of fuzz seeds: bytes, JSON documents and YAML documents.

Every function takes a `random.Random` and is deterministic for its state, so a case can be
rebuilt from `(seed, family, index)` alone. `shrink` is a small delta-debugging minimiser.
Used by `bench/fuzz.py` and the Hypothesis suites under `tests/fuzz/` (which pass the
`random.Random` Hypothesis draws).
"""

from __future__ import annotations

import json
import random
import re
import struct
import time
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

T = TypeVar("T")

INTERESTING_BYTES: Final = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x0D, 0x40, 0x23, 0x22, 0x5B, 0x5D)
"""Boundary values and the delimiters of the stream formats (LF, CR, @, #, quote, brackets)."""

INTERESTING_INTS: Final = (
    0,
    1,
    -1,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
)

INTERESTING_WORDS: Final = (
    *(
        struct.pack(f"{order}{kind}", value)
        for order in "<>"
        for kind in "fd"
        for value in (float("nan"), float("inf"), float("-inf"), 3.4e38, -0.0)
    ),
    b"\x7f\xc0\x00\x00",
    b"\x00\x00\xc0\x7f",
    b"\xff\xff\xff\xff",
    b"\x80\x00\x00\x00",
)
"""Float NaN/inf patterns (both byte orders, float32 and float64) and sign-bit words."""

JSON_HOSTILE: Final = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e308",
    "5e-324",
    "-0.0",
    "9" * 5000,
    "18446744073709551616",
    "-9223372036854775809",
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    json.dumps("x" * 100_000),
    '"\\ud800"',
    '"\\u0000"',
    '"\\u202e\\u00e9\\u4e2d"',
    '"NaN"',
    '"Infinity"',
    '"1e400"',
    '"2024-13-01T25:61:00+00:00"',
    '"2026-01-01T00:00:00"',
    '"0001-01-01T00:00:00+00:00"',
    '"9999-12-31T23:59:59+14:00"',
    "true",
    "false",
    "null",
    "0",
    "-1",
    "[]",
    "{}",
    '""',
    "[null]",
    '{"": null}',
)
"""JSON texts that replace a value: non-finite numbers, huge and deep values, wrong types."""

YAML_HOSTILE: Final = (
    "!!int abc",
    "!!float xyz",
    "!!bool maybe",
    "!!timestamp 2024-13-01",
    "2024-13-01",
    "2024-02-30",
    "2001-12-14t21:59:43.10-05:00",
    ".nan",
    ".NaN",
    ".inf",
    "-.inf",
    "!!float .nan",
    "1e19",
    "1e400",
    "-1e400",
    "9" * 5000,
    "0x" + "f" * 2000,
    "0o777777777777777777777",
    "1_000_000",
    "190:20:30",
    "12:30",
    "~",
    "null",
    "yes",
    "off",
    "'\\x00'",
    '"\\0\\x00"',
    '"\\ud800"',
    '"\\u202e\\u4e2d"',
    "!!binary AAAA",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:builtins.eval",
    "!!set {a, b}",
    "!!omap [a: 1, b: 2]",
    "!!pairs [a: 1]",
    "!custom value",
    "*undefined_alias",
    "&anchor value",
    "[1, [2, [3]]]",
    "{a: 1, a: 2}",
    "{[1, 2]: x}",
    "{? {a: 1} : b}",
    "[]",
    "{}",
    "''",
    "x" * 10_000,
    "-1",
    "0",
    "18446744073709551616",
    "- a\n- b",
)
"""YAML scalars and flow values that replace a value: bad tags, bad dates, non-finite, huge."""

_YAML_KEY_LINE = re.compile(r"^(?P<head>\s*(?:-\s+)?[^\s#:\-][^:#]*?):(?:\s+(?P<value>\S.*))?$")


def flip(rng: random.Random, data: bytes) -> bytes:
    """Flip one bit."""
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    out = bytearray(data)
    out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def insert(rng: random.Random, data: bytes) -> bytes:
    """Insert 1-16 random or interesting bytes."""
    i = rng.randint(0, len(data))
    if rng.random() < 0.5:
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    else:
        blob = bytes([rng.choice(INTERESTING_BYTES)]) * rng.randint(1, 4)
    return data[:i] + blob + data[i:]


def delete(rng: random.Random, data: bytes) -> bytes:
    """Delete a short range."""
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 8) :]


def duplicate(rng: random.Random, data: bytes) -> bytes:
    """Copy a range and insert it elsewhere."""
    if not data:
        return data
    i = rng.randrange(len(data))
    chunk = data[i : i + rng.randint(1, 32)]
    j = rng.randint(0, len(data))
    return data[:j] + chunk * rng.randint(1, 3) + data[j:]


def truncate(rng: random.Random, data: bytes) -> bytes:
    """Cut the end (or, one time in four, the start)."""
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[i:] if rng.random() < 0.25 else data[:i]


def interesting(rng: random.Random, data: bytes) -> bytes:
    """Overwrite a byte, an 8/16/32-bit integer or a float word with a boundary value."""
    if not data:
        return bytes([rng.choice(INTERESTING_BYTES)])
    out = bytearray(data)
    i = rng.randrange(len(data))
    pick = rng.random()
    if pick < 0.4:
        out[i] = rng.choice(INTERESTING_BYTES)
        return bytes(out)
    if pick < 0.75:
        width = rng.choice((2, 4))
        value = rng.choice(INTERESTING_INTS) & ((1 << (8 * width)) - 1)
        blob = value.to_bytes(width, rng.choice(("little", "big")))
    else:
        blob = rng.choice(INTERESTING_WORDS)
    out[i : i + len(blob)] = blob
    return bytes(out)


def splice(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Join the start of `data` with the end of `other`."""
    i = rng.randint(0, len(data))
    j = rng.randint(0, len(other))
    return data[:i] + other[j:]


BYTE_OPS: Final[tuple[Callable[[random.Random, bytes], bytes], ...]] = (
    flip,
    insert,
    delete,
    duplicate,
    truncate,
    interesting,
)


def mutate_bytes(rng: random.Random, data: bytes, corpus: Sequence[bytes] = ()) -> bytes:
    """Apply 1-4 stacked byte-level mutations (one may be a splice with another seed)."""
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        if corpus and rng.random() < 0.1:
            data = splice(rng, data, rng.choice(corpus))
        else:
            data = rng.choice(BYTE_OPS)(rng, data)
    return data


# JSON -------------------------------------------------------------------------------------------

_RAW = "\x00raw{}\x00"


def _json_paths(doc: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a value in a parsed JSON document (the root included)."""
    paths = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            paths.extend(_json_paths(value, (*path, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            paths.extend(_json_paths(value, (*path, index)))
    return paths


def _set_path(doc: object, path: tuple[object, ...], value: object) -> object:
    """Return `doc` with the value at `path` replaced (in place below the root)."""
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]  # type: ignore[index]
    parent[path[-1]] = value  # type: ignore[index]
    return doc


def _get_path(doc: object, path: tuple[object, ...]) -> object:
    for part in path:
        doc = doc[part]  # type: ignore[index]
    return doc


def _wrong_type(rng: random.Random, value: object) -> object:
    choices: list[object] = [None, True, 0, -1, 1.5, "", "x", [], {}, [value], {"v": value}]
    return rng.choice(choices)


def _json_op(rng: random.Random, doc: object, raw: list[str]) -> object:
    """Apply one structure-aware change to a parsed JSON document; hostile texts go to `raw`."""
    path = rng.choice(_json_paths(doc))
    pick = rng.random()
    if pick < 0.55:
        raw.append(rng.choice(JSON_HOSTILE))
        return _set_path(doc, path, _RAW.format(len(raw) - 1))
    if pick < 0.75:
        return _set_path(doc, path, _wrong_type(rng, _get_path(doc, path)))
    value = _get_path(doc, path)
    if pick < 0.85 and path:
        parent = _get_path(doc, path[:-1])
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif isinstance(parent, list) and parent:
            parent.pop(rng.randrange(len(parent)))
    elif pick < 0.92 and isinstance(value, list) and value:
        value.extend(value * rng.randint(1, 50))
    elif pick < 0.92 and isinstance(value, dict):
        key = rng.choice(("extra", "", "\u00e9", "__proto__"))
        value[key] = rng.choice((1, "x", None, []))
    elif isinstance(value, str):
        return _set_path(doc, path, value + rng.choice(("\u202e", "\u4e2d", "\x00", "é")))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return _set_path(doc, path, -value if rng.random() < 0.5 else value * 10**6)
    return doc


def mutate_json_doc(rng: random.Random, text: str) -> bytes:
    """Replace, delete, duplicate or retype values of a JSON document (text mutation if not JSON).

    Replacements include `NaN`/`Infinity`/`1e400`, a 5,000-digit integer, deep nesting, long and
    non-ASCII strings and values of the wrong type.
    """
    try:
        doc = json.loads(text)
    except ValueError:
        return mutate_bytes(rng, text.encode("utf-8", "surrogatepass"))
    raw: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        doc = _json_op(rng, doc, raw)
    out = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    for index, text_value in enumerate(raw):
        out = out.replace(json.dumps(_RAW.format(index)), text_value)
    data = out.encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        data = mutate_bytes(rng, data)
    return data


# YAML -------------------------------------------------------------------------------------------


def alias_bomb(levels: int, width: int) -> str:
    """A flow mapping whose last key expands to `width ** levels` leaves through aliases."""
    parts = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    parts.extend(
        f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]"
        for level in range(1, levels)
    )
    return "{" + ", ".join(parts) + "}"


def _yaml_value(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.75:
        return rng.choice(YAML_HOSTILE)
    if pick < 0.85:
        depth = rng.choice((50, 500, 5000))
        return "[" * depth + "]" * depth
    if pick < 0.95:
        return alias_bomb(rng.randint(3, 9), rng.randint(3, 9))
    return "&a [1, 2, *a]"


def _yaml_line_op(rng: random.Random, lines: list[str]) -> list[str]:
    lines = lines or [""]
    i = rng.randrange(len(lines))
    line = lines[i]
    pick = rng.random()
    match = _YAML_KEY_LINE.match(line)
    if pick < 0.45 and match:
        lines[i] = f"{match['head']}: {_yaml_value(rng)}"
    elif pick < 0.55:
        indent = line[: len(line) - len(line.lstrip())]
        lines.insert(
            i,
            f"{indent}{rng.choice(('extra', 'id', '? [a, b]', '<<', 'x' * 200))}: {_yaml_value(rng)}",
        )
    elif pick < 0.63 and lines:
        lines.insert(i, line)  # duplicate key or item
    elif pick < 0.7 and lines:
        del lines[i]
    elif pick < 0.76 and len(lines) > 1:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif pick < 0.82 and match:
        lines[i] = f"{match['head']}: &x {match['value'] or '1'}"
        lines.append(f"{match['head'].strip().lstrip('- ')}_again: *x")
    elif pick < 0.87:
        lines[i] = rng.choice(("\t", "  ", " ")) + line
    elif pick < 0.92:
        lines.insert(
            0,
            rng.choice(
                (
                    "%YAML 1.1\n---",
                    "%YAML 9.9\n---",
                    "%TAG ! tag:x,2000:\n---",
                    "--- !!map",
                    "---\n...\n---",
                )
            ),
        )
    elif pick < 0.96:
        lines.append(
            rng.choice(("---\nsecond: doc", "...", "? complex\n: key", "[unclosed", "{a: [b"))
        )
    else:
        lines[i] = line + " # \u202e\u4e2d"
    return lines


def mutate_yaml(rng: random.Random, text: str) -> bytes:
    """Structure-aware YAML mutation, returning the file bytes.

    Replaces values with hostile scalars (bad tags, impossible dates, `.nan`, `.inf`, `1e19`,
    5,000-digit integers), anchors and aliases (a small alias bomb included), deep nesting,
    complex and duplicate keys; sometimes re-encodes the file with a BOM, as UTF-16, or adds NUL
    bytes, and one time in ten applies byte-level mutations.
    """
    lines = text.splitlines()
    for _ in range(rng.choice((1, 1, 2, 3))):
        lines = _yaml_line_op(rng, lines)
    out = "\n".join(lines) + "\n"
    pick = rng.random()
    if pick < 0.03:
        return b"\xef\xbb\xbf" + out.encode("utf-8", "surrogatepass")
    if pick < 0.05:
        return out.encode("utf-16")
    if pick < 0.07:
        i = rng.randint(0, len(out))
        return (out[:i] + "\x00" + out[i:]).encode("utf-8", "surrogatepass")
    data = out.encode("utf-8", "surrogatepass")
    if pick < 0.17:
        data = mutate_bytes(rng, data)
    return data


# Shrinking --------------------------------------------------------------------------------------


def shrink(
    data: bytes,
    still_fails: Callable[[bytes], bool],
    *,
    max_tests: int = 400,
    max_seconds: float = 5.0,
) -> bytes:
    """Delta-debug `data` to a smaller input for which `still_fails` holds (ddmin over bytes).

    Removes chunks of halving size while the predicate holds, then tries single bytes; stops
    after `max_tests` predicate calls or `max_seconds`.
    """
    deadline = time.monotonic() + max_seconds
    tests = 0
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and tests < max_tests and time.monotonic() < deadline:
        i = 0
        changed = False
        while i < len(data) and tests < max_tests and time.monotonic() < deadline:
            candidate = data[:i] + data[i + chunk :]
            tests += 1
            if candidate != data and still_fails(candidate):
                data = candidate
                changed = True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return data


def shrink_list(
    items: list[T],
    still_fails: Callable[[list[T]], bool],
    *,
    max_tests: int = 200,
) -> list[T]:
    """Delta-debug a list: drop elements (in halving chunks) while `still_fails` holds."""
    tests = 0
    chunk = max(1, len(items) // 2)
    while chunk >= 1 and tests < max_tests:
        i = 0
        changed = False
        while i < len(items) and tests < max_tests:
            candidate = items[:i] + items[i + chunk :]
            tests += 1
            if still_fails(candidate):
                items = candidate
                changed = True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return items


def bytes_literal(data: bytes, run: int = 16) -> str:
    """`data` as a Python expression, runs of `run` or more equal bytes written as `b'x' * n`."""
    parts: list[str] = []
    plain = bytearray()
    i = 0
    while i < len(data):
        j = i
        while j < len(data) and data[j] == data[i]:
            j += 1
        if j - i >= run:
            if plain:
                parts.append(repr(bytes(plain)))
                plain.clear()
            parts.append(f"{bytes([data[i]])!r} * {j - i}")
        else:
            plain += data[i:j]
        i = j
    if plain or not parts:
        parts.append(repr(bytes(plain)))
    return " + ".join(parts)
