"""The configuration reference of `/etc/steward/edge.yaml`, generated from the config schema.

`render()` turns the JSON schema of `EdgeConfig` (every model's and field's docstring, types,
defaults and bounds) into the Markdown of `docs/config-reference.md`, one section per mapping of
the file, named by its path (`sources.modbus[]`). A test compares the committed file with
`render()`, so the reference cannot drift from the schema; regenerate it with

    .venv/bin/python -m edge_agent.config_reference > docs/config-reference.md
"""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

from edge_agent.config import EdgeConfig

ROOT_NAME: Final = "EdgeConfig"
MAX_LISTED: Final = 12
"""A longer choice (the metric catalog) is named by count and first names."""
_DURATION_NOTE: Final = "seconds, or a duration such as `30s`, `5m`, `1h`"
_BOUNDS: Final = (
    ("minimum", "≥"),
    ("exclusiveMinimum", ">"),
    ("gt", ">"),
    ("ge", "≥"),
    ("maximum", "≤"),
    ("exclusiveMaximum", "<"),
    ("lt", "<"),
    ("le", "≤"),
    ("minLength", "length ≥"),
    ("maxLength", "length ≤"),
    ("minItems", "items ≥"),
    ("maxItems", "items ≤"),
)
HEADER: Final = """\
# Configuration reference: `/etc/steward/edge.yaml`

Generated from the configuration schema (`edge_agent/config.py`) by
`.venv/bin/python -m edge_agent.config_reference`; a test keeps it equal to the schema. Validate a
file with `edge-agent check --config FILE`: every error is printed with its `file:line`, and the
agent refuses to start on any. `deploy/edge.example.yaml` is a complete, commented example;
[edge-agent.md](edge-agent.md) explains what each part does.

Unknown keys are errors (with the nearest known key suggested). A key marked *required* has no
default. Durations (`…_s` keys) take seconds or a duration text such as `30s`, `5m` or `1h`.
"""


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(name: str) -> str:
    return name.lower()


def _enum(values: list[Any]) -> str:
    if len(values) > MAX_LISTED:
        return f"one of {len(values)} names (`{values[0]}`, `{values[1]}`, ...)"
    return " | ".join(f"`{v}`" for v in values)


_SCALARS: Final = {
    "string": "text",
    "integer": "whole number",
    "boolean": "true/false",
    "number": "number",
}


def _type(schema: Mapping[str, Any], defs: Mapping[str, Any], name: str) -> str:
    """The type of a field schema in words, with links to the sections of nested mappings."""
    if "$ref" in schema:
        target = _ref_name(schema["$ref"])
        if "enum" in defs[target]:
            return _enum(defs[target]["enum"])
        return f"[mapping](#{_anchor(target)})"
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        text = " or ".join(_type(s, defs, name) for s in options)
        return f"{text} or null" if len(options) < len(schema["anyOf"]) else text
    if "enum" in schema:
        return _enum(schema["enum"])
    return _structure(schema, defs, name)


def _structure(schema: Mapping[str, Any], defs: Mapping[str, Any], name: str) -> str:
    kind = str(schema.get("type", "any"))
    text = _SCALARS.get(kind, kind)
    if kind == "array":
        text = f"list of {_type(schema.get('items', {}), defs, name)}"
    elif kind == "object":
        values = schema.get("additionalProperties")
        text = (
            f"mapping of {_type(values, defs, name)}"
            if isinstance(values, Mapping) and values
            else "mapping"
        )
    elif kind == "number" and name.endswith("_s"):
        text = "duration"
    return text


def _constraints(schema: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for option in [schema, *schema.get("anyOf", ())]:
        parts.extend(f"{sign} {option[key]}" for key, sign in _BOUNDS if key in option)
        if "pattern" in option:
            parts.append(f"pattern `{option['pattern']}`")
    return ", ".join(dict.fromkeys(parts))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(field: Mapping[str, Any], required: bool) -> str:  # noqa: FBT001 - private
    if required:
        return "*required*"
    if "default" not in field:
        return "empty"
    value = field["default"]
    if value is None:
        return "none"
    if value in ([], {}, ""):
        return "empty"
    if isinstance(value, dict) and _children(field):
        return "its keys' defaults"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _meaning(field: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    """The field's docstring, else (a nested mapping) the first line of its model's."""
    text = str(field.get("description", ""))
    for _, child in _children(field):
        text = text or str(defs[child].get("description", "")).split("\n\n")[0]
    return text


def _children(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key suffix, definition name) of every nested mapping a field holds."""
    found: list[tuple[str, str]] = []
    options = [schema, *schema.get("anyOf", ())]
    for option in options:
        if "$ref" in option:
            found.append(("", _ref_name(option["$ref"])))
        items = option.get("items")
        if isinstance(items, Mapping) and "$ref" in items:
            found.append(("[]", _ref_name(items["$ref"])))
    return found


def render() -> str:
    """The whole reference as Markdown."""
    schema = EdgeConfig.model_json_schema()
    defs: dict[str, Any] = {**schema.pop("$defs", {}), ROOT_NAME: schema}
    paths: dict[str, str] = {ROOT_NAME: ""}
    queue: deque[str] = deque([ROOT_NAME])
    order: list[str] = []
    while queue:
        name = queue.popleft()
        order.append(name)
        for key, field in defs[name].get("properties", {}).items():
            for suffix, child in _children(field):
                if child not in paths and "properties" in defs[child]:
                    prefix = f"{paths[name]}." if paths[name] else ""
                    paths[child] = f"{prefix}{key}{suffix}"
                    queue.append(child)
    out = [HEADER]
    for name in order:
        model = defs[name]
        path = paths[name] or "top level"
        out.append(f'<a id="{_anchor(name)}"></a>\n\n## `{path}`\n')
        if model.get("description"):
            out.append(model["description"].strip() + "\n")
        out.append("| key | type | default | bounds | meaning |\n|---|---|---|---|---|")
        required = set(model.get("required", ()))
        for key, field in model.get("properties", {}).items():
            meaning = _meaning(field, defs)
            if "duration" in _type(field, defs, key):
                meaning = f"{meaning} ({_DURATION_NOTE})" if meaning else _DURATION_NOTE
            cells = (
                f"`{key}`",
                _type(field, defs, key),
                _default(field, key in required),
                _constraints(field),
                meaning,
            )
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    return "\n".join(out)


def undocumented() -> list[str]:
    """Fields of the schema without a description (`path.key`): each should say what it does."""
    schema = EdgeConfig.model_json_schema()
    defs: dict[str, Any] = {**schema.pop("$defs", {}), ROOT_NAME: schema}
    return sorted(
        f"{name}.{key}"
        for name, model in defs.items()
        for key, field in model.get("properties", {}).items()
        if not _meaning(field, defs)
    )


def main() -> None:
    """Print the reference (`python -m edge_agent.config_reference > docs/config-reference.md`)."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
