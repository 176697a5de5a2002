"""Load YAML and remember the line of every key and item, so validation errors can say file:line."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

Loc = tuple[str | int, ...]
"""Where a value sits: mapping keys and sequence indexes from the root."""


@dataclass(slots=True)
class Located:
    """A parsed document and the 1-based line of each key and sequence item."""

    data: object
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int:
        """The line of `loc`, or of its nearest recorded ancestor (1 if none)."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return 1


class YamlError(ValueError):
    """The text is not valid YAML; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        """Record the line and the parser's complaint."""
        self.line = line
        super().__init__(message)


def load_located(text: str) -> Located:
    """Parse one YAML document with safe-loader rules, recording lines.

    Raises:
        YamlError: the text is not YAML.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise YamlError(mark.line + 1 if mark else 1, f"YAML syntax: {err.problem}") from err
    except yaml.YAMLError as err:
        raise YamlError(1, f"YAML syntax: {err}") from err
    doc = Located(data=None)
    if node is not None:
        doc.lines[()] = node.start_mark.line + 1
        doc.data = _build(node, (), doc.lines)
    return doc


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> object:
    if isinstance(node, yaml.MappingNode):
        out: dict[object, object] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            child = (*loc, str(key))
            lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items: list[object] = []
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines[child] = item.start_mark.line + 1
            items.append(_build(item, child, lines))
        return items
    return _scalar(node)


def _scalar(node: yaml.Node) -> object:
    if not isinstance(node, yaml.ScalarNode):
        raise YamlError(node.start_mark.line + 1, "a mapping key must be a plain value")
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()
