"""The one YAML loader: bounded, safe, and remembering the line of every mapping key and sequence item.

Configuration, rule, rule-test and scenario files are all read here, so a broken file gives the same
kind of answer everywhere: a `YamlError` carrying `Issue`s (file, line, message), never a parser
exception, a `RecursionError`, a hang or a memory blow-up.

- `read_text(path)` refuses what is not a regular file (a directory, `/dev/zero`, a FIFO) and files
  over `MAX_FILE_BYTES` before reading them, and decodes UTF-8 strictly (a leading BOM is accepted).
- `load_located(text, filename)` refuses non-printable characters, more than one document, nesting
  deeper than `MAX_DEPTH`, aliases that expand to more than `MAX_ALIAS_VALUES` values or refer to
  themselves, duplicate keys, non-scalar keys, merge keys, tags other than YAML's core scalar types,
  and scalars their tag cannot hold (`!!int abc`, `2024-13-01`, an integer of hundreds of digits).
  Problems that do not stop the parser (duplicate keys, bad scalars, refused tags) are collected and
  reported together.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import yaml

from core.errors import CoreError
from core.issues import Issue

MAX_FILE_BYTES: Final = 4 * 1024 * 1024
"""Files larger than this are refused before they are read."""
MAX_DEPTH: Final = 64
"""How deeply mappings and sequences may nest (aliases included)."""
MAX_ALIAS_VALUES: Final = 10_000
"""How many values aliases may expand to in one document, all aliases together."""
MAX_INT_CHARS: Final = 100
"""Integers written with more characters than this are refused."""

Loc = tuple[str | int, ...]
"""Where a value sits in a document: mapping keys and sequence indexes from the root."""

_TAG: Final = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = (f"{_TAG}{n}" for n in ("str", "null", "bool", "int", "float"))
_TIMESTAMP, _BINARY, _MERGE = (f"{_TAG}{n}" for n in ("timestamp", "binary", "merge"))
_MAP, _SEQ = f"{_TAG}map", f"{_TAG}seq"
_BOOLS: Final = {
    "yes": True,
    "no": False,
    "true": True,
    "false": False,
    "on": True,
    "off": False,
}
_NON_PRINTABLE: Final = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_BREAK: Final = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_CHAR_NAMES: Final = {"\x00": "NUL", "\x1b": "ESC", "\x7f": "DEL", "\x08": "BS", "\x0c": "FF"}
_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _EventSource(Protocol):
    """The parser half of a PyYAML loader (pure Python or libyaml) and its tag resolver."""

    def check_event(self, *choices: type[yaml.Event]) -> bool: ...
    def peek_event(self) -> yaml.Event: ...
    def get_event(self) -> yaml.Event: ...
    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: object) -> str: ...
    def dispose(self) -> None: ...


class YamlError(CoreError, ValueError):
    """A file could not be read as YAML; `issues` says where and why (at least one)."""

    def __init__(self, issues: list[Issue] | tuple[Issue, ...]) -> None:
        """Keep every problem; the message lists them one per line."""
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class _FatalError(Exception):
    """Stops loading at a problem the rest of the document cannot be read past."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(message)


@dataclass(slots=True)
class Located:
    """A parsed document and the 1-based line of every mapping key and sequence item."""

    data: object
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int:
        """The line of `loc`, or of its nearest recorded ancestor (1 if none was recorded)."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return 1


def read_text(path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """Read a regular file of at most `max_bytes` bytes as strict UTF-8 (a leading BOM is dropped).

    Raises:
        YamlError: the file is missing, unreadable, not a regular file, too large, or not UTF-8;
            line 0 stands for the file as a whole.
    """
    name = os.fspath(path)

    def refuse(message: str) -> YamlError:
        return YamlError([Issue(name, 0, message)])

    if "\x00" in name:
        raise refuse("cannot read: a file name cannot hold a NUL character")
    try:  # non-blocking: opening a FIFO must not wait for a writer
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as err:
        raise refuse(f"cannot read: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise refuse("cannot read: is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise refuse("cannot read: not a regular file")
        if info.st_size > max_bytes:
            raise refuse(f"cannot read: larger than {_size(max_bytes)} ({info.st_size} bytes)")
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as err:
        raise refuse(f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise refuse(f"cannot read: larger than {_size(max_bytes)}")
    return decode_text(data, name)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _size(count: int) -> str:
    mib = 1024 * 1024
    return f"{count // mib} MiB" if count % mib == 0 else f"{count} bytes"


def decode_text(data: bytes, filename: str) -> str:
    """Decode file content as strict UTF-8, dropping a leading BOM.

    Raises:
        YamlError: naming the line and byte offset of the first byte that is not UTF-8.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise YamlError([Issue(filename, 1, "not UTF-8 text (byte 0: a UTF-16 byte order mark)")])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise YamlError([Issue(filename, line, f"not UTF-8 text (byte {err.start})")]) from None


def load_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES) -> Located:
    """`read_text` then `load_located`, naming the file by `path` as given.

    Raises:
        YamlError: the file cannot be read or is not acceptable YAML.
    """
    return load_located(read_text(path, max_bytes=max_bytes), os.fspath(path))


def load_located(text: str, filename: str = "<text>") -> Located:
    """Parse one YAML document with the safe types only, recording the line of every value.

    An empty document (or one with only comments) gives `data=None`, located at line 1.

    Raises:
        YamlError: every problem found, each with `filename` and its line.
    """
    text = text.removeprefix("\ufeff")
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        char = bad.group()
        label = _CHAR_NAMES.get(char, "")
        what = f"U+{ord(char):04X}" + (f" ({label})" if label else "")
        line = len(_BREAK.findall(text, 0, bad.start())) + 1
        raise YamlError([Issue(filename, line, f"non-printable character {what}")])
    try:
        root, alias_lines = _compose(text)
        doc = Located(data=None, lines={(): 1})
        if root is None:
            return doc
        builder = _Builder(alias_lines)
        doc.lines[()] = _line(root)
        doc.data = builder.build(root, (), 0, None)
    except _FatalError as err:
        raise YamlError([Issue(filename, err.line, err.message)]) from None
    doc.lines.update(builder.lines)
    if builder.problems:
        raise YamlError([Issue(filename, line, message) for line, message in builder.problems])
    return doc


def _event_line(event: yaml.Event) -> int:
    return 1 if event.start_mark is None else int(event.start_mark.line) + 1


def _mark(mark: object) -> yaml.error.Mark:
    """A mark holding only the position (the parser's may be libyaml's own type)."""
    line, column = getattr(mark, "line", 0), getattr(mark, "column", 0)
    return yaml.error.Mark("", 0, line, column, None, 0)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _compose(text: str) -> tuple[yaml.Node | None, dict[tuple[int, int], int]]:
    """Build the node graph from parser events without recursion, bounding depth; refuse cycles."""
    loader: _EventSource = _LOADER(text)
    try:
        return _Composer(loader).document()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "not YAML"
        raise _FatalError(int(mark.line) + 1 if mark else 1, f"YAML syntax: {problem}") from None
    except yaml.YAMLError as err:
        raise _FatalError(1, f"YAML syntax: {err}") from None
    finally:
        loader.dispose()


class _Composer:
    """Turns the event stream of one document into nodes, like PyYAML's composer, iteratively."""

    def __init__(self, loader: _EventSource) -> None:
        self.loader = loader
        self.anchors: dict[str, yaml.Node] = {}
        self.open_anchors: set[str] = set()
        # (collection, its anchor, the key node waiting for its value)
        self.stack: list[tuple[yaml.CollectionNode, str | None, list[yaml.Node]]] = []
        self.alias_lines: dict[tuple[int, int], int] = {}
        """Line of an alias used as item/value number i of a collection: (id, i) -> line."""

    def document(self) -> tuple[yaml.Node | None, dict[tuple[int, int], int]]:
        loader = self.loader
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None, {}
        loader.get_event()  # document start
        root = self._node()
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            event = loader.peek_event()
            raise _FatalError(_event_line(event), "a file holds one YAML document; found another")
        return root, self.alias_lines

    def _node(self) -> yaml.Node:
        root: yaml.Node | None = None
        while True:
            event = self.loader.get_event()
            line = _event_line(event)
            if isinstance(event, yaml.AliasEvent):
                node = self._alias(event.anchor or "", line)
                self._attach(node, alias_line=line)
            elif isinstance(event, yaml.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, _mark(event.start_mark), style=event.style)
                self._anchor(event.anchor, node, line)
                self._attach(node)
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                node = self._open(event, line)
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                node, anchor, _ = self.stack.pop()
                if anchor is not None:
                    self.open_anchors.discard(anchor)
                    self.anchors[anchor] = node
            else:  # pragma: no cover - the parser yields nothing else inside a document
                raise _FatalError(line, f"YAML syntax: unexpected {type(event).__name__}")
            if root is None:
                root = node
            if not self.stack:
                return root

    def _open(self, event: yaml.CollectionStartEvent, line: int) -> yaml.Node:
        if len(self.stack) >= MAX_DEPTH:
            raise _FatalError(line, f"nested deeper than {MAX_DEPTH} levels")
        sequence = isinstance(event, yaml.SequenceStartEvent)
        kind: type[yaml.Node] = yaml.SequenceNode if sequence else yaml.MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(kind, None, event.implicit)
        node: yaml.CollectionNode = (yaml.SequenceNode if sequence else yaml.MappingNode)(
            tag, [], _mark(event.start_mark), None, flow_style=event.flow_style
        )
        if event.anchor is not None:
            self._check_new_anchor(event.anchor, line)
            self.open_anchors.add(event.anchor)
        self._attach(node)
        self.stack.append((node, event.anchor, []))
        return node

    def _alias(self, anchor: str, line: int) -> yaml.Node:
        if anchor in self.open_anchors:
            raise _FatalError(
                line, f"alias *{anchor} refers to itself (recursive aliases are refused)"
            )
        node = self.anchors.get(anchor)
        if node is None:
            raise _FatalError(line, f"alias *{anchor} names no anchor defined before it")
        return node

    def _check_new_anchor(self, anchor: str, line: int) -> None:
        if anchor in self.anchors or anchor in self.open_anchors:
            raise _FatalError(line, f"anchor &{anchor} is defined twice")

    def _anchor(self, anchor: str | None, node: yaml.Node, line: int) -> None:
        if anchor is not None:
            self._check_new_anchor(anchor, line)
            self.anchors[anchor] = node

    def _attach(self, node: yaml.Node, alias_line: int | None = None) -> None:
        if not self.stack:
            return
        parent, _, pending = self.stack[-1]
        if isinstance(parent, yaml.SequenceNode):
            index = len(parent.value)
            parent.value.append(node)
        elif pending:
            index = len(parent.value)
            parent.value.append((pending.pop(), node))
        else:
            pending.append(node)
            return
        if alias_line is not None:
            self.alias_lines[(id(parent), index)] = alias_line


class _Builder:
    """Turns nodes into plain Python values, recording lines and collecting problems."""

    def __init__(self, alias_lines: dict[tuple[int, int], int]) -> None:
        self.alias_lines = alias_lines
        self.lines: dict[Loc, int] = {}
        self.problems: list[tuple[int, str]] = []
        self.built: set[int] = set()
        self.alias_values = 0
        self.makers = _makers(yaml.constructor.SafeConstructor())

    def build(self, node: yaml.Node, loc: Loc, depth: int, alias_at: int | None) -> object:
        """Build `node` found at `loc`; `alias_at` is the line of the alias it is copied through."""
        if alias_at is None and id(node) in self.built:
            alias_at = self.lines.get(loc, _line(node))
        if depth > MAX_DEPTH:
            raise _FatalError(
                alias_at or _line(node), f"nested deeper than {MAX_DEPTH} levels (through aliases)"
            )
        self.built.add(id(node))
        if alias_at is not None:
            self.alias_values += 1
            if self.alias_values > MAX_ALIAS_VALUES:
                raise _FatalError(
                    alias_at, f"aliases expand to more than {MAX_ALIAS_VALUES} values"
                )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc, depth, alias_at)
        if isinstance(node, yaml.SequenceNode):
            return self._sequence(node, loc, depth, alias_at)
        return self._scalar(node)

    def _collection_tag(self, node: yaml.Node, expected: str) -> bool:
        if node.tag == expected:
            return True
        self.problems.append((_line(node), f"tag {_short(node.tag)} is not allowed"))
        return False

    def _mapping(
        self, node: yaml.MappingNode, loc: Loc, depth: int, alias_at: int | None
    ) -> dict[object, object] | None:
        if not self._collection_tag(node, _MAP):
            return None
        out: dict[object, object] = {}
        first: dict[object, int] = {}
        for key_node, value_node in node.value:
            line = _line(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    (line, "a mapping key must be a plain value, not a collection")
                )
                continue
            if key_node.tag == _MERGE:
                self.problems.append((line, "merge keys (<<) are not supported; write keys out"))
                continue
            key = self._scalar(key_node)
            if key is _BAD:
                continue
            if key in first:
                self.problems.append((line, f"duplicate key {key!r} (first at line {first[key]})"))
                continue
            first[key] = line
            child = (*loc, _loc_part(key))
            self.lines[child] = line
            out[key] = self.build(value_node, child, depth + 1, alias_at)
        return out

    def _sequence(
        self, node: yaml.SequenceNode, loc: Loc, depth: int, alias_at: int | None
    ) -> list[object] | None:
        if not self._collection_tag(node, _SEQ):
            return None
        items: list[object] = []
        for index, item in enumerate(node.value):
            child = (*loc, index)
            self.lines[child] = self.alias_lines.get((id(node), index), _line(item))
            items.append(self.build(item, child, depth + 1, alias_at))
        return items

    def _scalar(self, node: yaml.Node) -> object:
        if not isinstance(node, yaml.ScalarNode):  # pragma: no cover - callers check
            return _BAD
        tag, value = node.tag, node.value
        try:
            result = self._construct(node)
        except (ValueError, TypeError, AttributeError, LookupError, OverflowError) as err:
            problem = f"{_short(tag)} {_clip(value)} is not valid ({_reason(err)})"
        except yaml.YAMLError as err:
            problem = f"{_short(tag)} {_clip(value)} is not valid ({_reason(err)})"
        else:
            if result is _BAD:
                problem = f"tag {_short(tag)} is not allowed"
            elif isinstance(result, str) and "\x00" in result:
                # An escape (`"\0"`) puts into a value what the text itself may not hold; no
                # file name, id or text of ours can carry it.
                problem = "a NUL character (\\0) in a string"
            else:
                return result
        self.problems.append((_line(node), problem))
        return _BAD

    def _construct(self, node: yaml.ScalarNode) -> object:
        make = self.makers.get(node.tag)
        return _BAD if make is None else make(node)


def _makers(c: yaml.constructor.SafeConstructor) -> dict[str, Callable[[yaml.ScalarNode], object]]:
    """How each allowed scalar tag is built (PyYAML's safe constructors, bounded)."""
    return {
        _STR: lambda node: node.value,
        _NULL: _null,
        _BOOL: _bool,
        _INT: lambda node: c.construct_yaml_int(_bounded(node, MAX_INT_CHARS)),
        _FLOAT: lambda node: c.construct_yaml_float(_bounded(node, 4 * MAX_INT_CHARS)),
        _TIMESTAMP: c.construct_yaml_timestamp,
        _BINARY: c.construct_yaml_binary,
    }


def _null(node: yaml.ScalarNode) -> None:
    if node.value not in {"", "~", "null", "Null", "NULL"}:
        raise ValueError("a null is written ~, null or nothing")


def _bool(node: yaml.ScalarNode) -> bool:
    flag = _BOOLS.get(node.value.lower())
    if flag is None:
        raise ValueError("a boolean is written true or false")
    return flag


def _bounded(node: yaml.ScalarNode, limit: int) -> yaml.ScalarNode:
    if len(node.value) > limit:
        raise ValueError(f"more than {limit} characters")
    return node


class _Bad:
    """A scalar that could not be built (its problem is already recorded)."""

    def __repr__(self) -> str:
        return "<invalid>"


_BAD: Final = _Bad()


def _loc_part(key: object) -> str | int:
    if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
        return key
    return str(key)


def _short(tag: str) -> str:
    return f"!!{tag.removeprefix(_TAG)}" if tag.startswith(_TAG) else _clip(tag, 60)


def _clip(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _reason(err: BaseException) -> str:
    if isinstance(err, yaml.MarkedYAMLError):
        return str(err.problem or err.context or "invalid")
    if isinstance(err, ValueError | OverflowError) and str(err):
        return str(err)
    return "does not fit the tag"


__all__ = [
    "MAX_ALIAS_VALUES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Issue",
    "Loc",
    "Located",
    "YamlError",
    "decode_text",
    "load_file",
    "load_located",
    "read_text",
]
