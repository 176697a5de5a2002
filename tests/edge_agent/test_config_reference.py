"""docs/config-reference.md is the configuration schema's own reference: it cannot drift."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import EdgeConfig
from edge_agent.config_reference import render, undocumented

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "config-reference.md"


def test_the_committed_reference_is_the_schemas() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render(), (
        "docs/config-reference.md is stale: "
        ".venv/bin/python -m edge_agent.config_reference > docs/config-reference.md"
    )


def test_every_key_of_the_config_says_what_it_does() -> None:
    assert undocumented() == []


def test_every_key_and_section_of_the_schema_is_in_the_reference() -> None:
    text = render()
    schema = EdgeConfig.model_json_schema()
    models = [schema, *(d for d in schema["$defs"].values() if "properties" in d)]
    for model in models:
        for key in model["properties"]:
            assert f"| `{key}` |" in text, key
    for section in ("## `top level`", "## `sources.modbus[]`", "## `devices[].modbus`"):
        assert section in text
    assert "| `fields` |" in text
    assert "## `uplink.backoff`" in text
