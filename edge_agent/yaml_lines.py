"""YAML loading that remembers where each value was written, so errors can name file:line."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

Path_ = tuple[str | int, ...]
"""Where a value sits in the document: mapping keys and sequence indexes from the root."""


@dataclass(slots=True)
class LocatedDocument:
    """A parsed YAML document and the 1-based line of every mapping key and sequence item."""

    data: object
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """Return the line of `path`, or of its nearest ancestor that was written down (0 if none)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 0


class YamlSyntaxError(ValueError):
    """The text is not valid YAML; `line` is 1-based (0 when the parser did not say)."""

    def __init__(self, line: int, message: str) -> None:
        """Record where the parser gave up and why."""
        self.line = line
        super().__init__(message)


def load_located(text: str) -> LocatedDocument:
    """Parse one YAML document with the safe loader's rules, recording the line of every value.

    Raises:
        YamlSyntaxError: the text is not YAML, or holds a tag the safe loader refuses.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise YamlSyntaxError(line, f"YAML syntax: {err.problem or err}") from err
    except yaml.YAMLError as err:
        raise YamlSyntaxError(0, f"YAML syntax: {err}") from err
    doc = LocatedDocument(data=None)
    if node is None:
        return doc
    doc.lines[()] = node.start_mark.line + 1
    doc.data = _construct(node, (), doc.lines)
    return doc


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


def _construct(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> object:
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in {
        _MAP_TAG,
        _SEQ_TAG,
    }:
        raise YamlSyntaxError(node.start_mark.line + 1, f"YAML: tag {node.tag!r} is not allowed")
    if isinstance(node, yaml.MappingNode):
        out: dict[object, object] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            child = (*path, str(key))
            lines[child] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, child, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items: list[object] = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            items.append(_construct(item, child, lines))
        return items
    return _scalar(node)


def _scalar(node: yaml.Node) -> object:
    if not isinstance(node, yaml.ScalarNode):
        raise YamlSyntaxError(node.start_mark.line + 1, "YAML syntax: a key must be a plain value")
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as err:
        raise YamlSyntaxError(node.start_mark.line + 1, f"YAML: {err.problem}") from err
