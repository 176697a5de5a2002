"""Schema errors as located issues: the line of the key, the nearest known key for a typo."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from core.schema_issues import known_keys, schema_issues, unknown_key
from core.yaml_located import load_located


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Inner(_Strict):
    interval_s: float = 1.0
    timeout_s: float = 1.0


class Outer(_Strict):
    name: str
    items: tuple[Inner, ...] = ()
    extra: Inner | None = None


def test_known_keys_follow_sequences_and_optional_models() -> None:
    assert known_keys(Outer, ()) == ("name", "items", "extra")
    assert known_keys(Outer, ("items", 3)) == ("interval_s", "timeout_s")
    assert known_keys(Outer, ("extra",)) == ("interval_s", "timeout_s")
    assert known_keys(Outer, ("name",)) == ()


def test_an_unknown_key_names_the_nearest_known_one_or_all_of_them() -> None:
    assert unknown_key("intervall_s", ["interval_s", "timeout_s"]) == (
        "unknown key; did you mean interval_s?"
    )
    assert unknown_key("zzz", ["b", "a"]) == "unknown key; known: a, b"
    assert unknown_key("zzz", []) == "unknown key"


def test_each_error_is_an_issue_at_the_line_of_its_key() -> None:
    doc = load_located("name: x\nitems:\n  - interval_s: 2\n    timout_s: 3\n", "f.yaml")
    try:
        Outer.model_validate(doc.data)
    except ValidationError as err:
        issues = list(schema_issues(err.errors(), doc, "f.yaml", Outer))
    assert [str(i) for i in issues] == [
        "f.yaml:4: items.0.timout_s: unknown key; did you mean timeout_s?"
    ]
