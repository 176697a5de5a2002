"""Schema errors of a located document as `Issue`s, each at its key's line.

An unknown key is reported with the nearest known one. The schema is a tree of model classes that list their fields in `model_fields` (pydantic's
`BaseModel` does), walked by duck typing so that `core` needs no pydantic; the errors are the
dicts that `ValidationError.errors()` returns.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from core.issues import Issue
from core.yaml_located import Loc, Located


def schema_issues(
    errors: Iterable[Mapping[str, Any]], doc: Located, filename: str, root: type
) -> Iterator[Issue]:
    """One `Issue` per error: `where: message`, at the line of the key it concerns."""
    for error in errors:
        loc: Loc = tuple(part for part in error["loc"] if isinstance(part, str | int))
        where = ".".join(str(part) for part in loc) or "(document)"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and loc:
            message = unknown_key(str(loc[-1]), known_keys(root, loc[:-1]))
        yield Issue(filename, doc.line_of(loc), f"{where}: {message}")


def unknown_key(key: str, known: Iterable[str]) -> str:
    """The message for an unknown key: the nearest known one, else every known one."""
    names = sorted(known)
    nearest = difflib.get_close_matches(key, names, n=1)
    if nearest:
        return f"unknown key; did you mean {nearest[0]}?"
    return f"unknown key; known: {', '.join(names)}" if names else "unknown key"


def known_keys(root: type, loc: Loc) -> tuple[str, ...]:
    """The keys the mapping at `loc` of a document validated as `root` may hold."""
    current: object = root
    for part in loc:
        current = _unwrapped(current)
        fields = _fields(current)
        if fields is not None:
            field = fields.get(str(part))
            current = None if field is None else getattr(field, "annotation", None)
        elif get_origin(current) in {tuple, list} and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return ()
    fields = _fields(_unwrapped(current))
    return () if fields is None else tuple(fields)


def _fields(model: object) -> Mapping[str, object] | None:
    fields = getattr(model, "model_fields", None) if isinstance(model, type) else None
    return fields if isinstance(fields, Mapping) else None


def _unwrapped(annotation: object) -> object:
    """`X` of `Annotated[X, ...]` and of `X | None`."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in {Union, types.UnionType}:
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
