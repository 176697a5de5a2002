"""The one YAML loader: lines of keys and items, and a located error for every broken input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.issues import Issue
from core.yaml_located import (
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    YamlError,
    load_file,
    load_located,
    read_text,
)

BILLION_LAUGHS = "lol0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 9)
)


def only_issue(text: str) -> Issue:
    with pytest.raises(YamlError) as caught:
        load_located(text, "f.yaml")
    (issue,) = caught.value.issues
    assert issue.file == "f.yaml"
    return issue


def test_lines_of_keys_and_items_are_recorded() -> None:
    doc = load_located("a: 1\nb:\n  - x\n  - {c: 2}\n", "f.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"c": 2}]}
    assert doc.lines[("a",)] == 1
    assert doc.lines[("b",)] == 2
    assert doc.lines[("b", 1)] == 4
    assert doc.line_of(("b", 1, "c", "deeper")) == 4
    assert doc.line_of(("nowhere",)) == 1


def test_an_alias_in_a_sequence_is_located_where_it_is_used() -> None:
    doc = load_located("a: &x {k: 1}\nb:\n  - *x\n", "f.yaml")
    assert doc.data == {"a": {"k": 1}, "b": [{"k": 1}]}
    assert doc.lines[("b", 0)] == 3


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\ufeff"])
def test_an_empty_document_is_none_at_line_1(text: str) -> None:
    doc = load_located(text, "f.yaml")
    assert doc.data is None
    assert doc.line_of(()) == 1


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: 1\nb: !!int abc\n", 2, "!!int 'abc' is not valid"),
        ("a: 2024-13-01\n", 1, "month must be in 1..12"),
        ("a: !!bool maybe\n", 1, "!!bool 'maybe'"),
        ("a: !!timestamp x\n", 1, "!!timestamp 'x'"),
        ("a: !!int\n", 1, "!!int '' is not valid"),
        ("a: " + "9" * 5000 + "\n", 1, "more than 100 characters"),
        ("a: !!float abc\n", 1, "!!float 'abc'"),
        ("a:\n  b: !foo bar\n", 2, "tag '!foo' is not allowed"),
        ("a: !!python/object/apply:os.system ['true']\n", 1, "python/object"),
        ("a: !!set {x, y}\n", 1, "tag !!set is not allowed"),
        ("a: &a [*a]\n", 1, "refers to itself"),
        ("a: *nowhere\n", 1, "names no anchor"),
        ("a: &x 1\nb: &x 2\n", 2, "anchor &x is defined twice"),
        ("x: 1\n? [a]\n: 1\n", 2, "a mapping key must be a plain value"),
        ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first at line 1)"),
        ("base: &b {x: 1}\nc:\n  <<: *b\n", 3, "merge keys"),
        ("a: 1\n---\nb: 2\n", 2, "one YAML document"),
        ("a:\n  b: [unclosed\nc: 1\n", 3, "YAML syntax"),
        ("a: 1\nb: \x00\n", 2, "non-printable character U+0000 (NUL)"),
        ("a: 1\n\nb: x\x1b[0m\n", 3, "U+001B (ESC)"),
    ],
)
def test_every_broken_input_is_one_located_issue(text: str, line: int, words: str) -> None:
    issue = only_issue(text)
    assert issue.line == line, issue
    assert words in issue.message, issue


def test_problems_that_do_not_stop_the_parser_are_reported_together() -> None:
    with pytest.raises(YamlError) as caught:
        load_located("a: 1\na: 2\nb: !!int x\nc: !foo y\n", "f.yaml")
    assert [issue.line for issue in caught.value.issues] == [2, 3, 4]


def test_deep_nesting_is_refused_with_its_line() -> None:
    flow = only_issue("a: " + "[" * 1000 + "]" * 1000 + "\n")
    assert flow.line == 1
    block = "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 10))
    assert only_issue(block).line == MAX_DEPTH + 1
    assert "nested deeper" in only_issue(block).message


def test_nesting_through_aliases_is_bounded_too() -> None:
    deep = "[" * 40 + "x" + "]" * 40
    issue = only_issue(f"a: &a {deep}\nb: &b [{'[' * 30}*a{']' * 30}]\n")
    assert issue.line == 2
    assert "through aliases" in issue.message


@pytest.mark.timeout(60)  # a guard against a hang, not a measurement
def test_billion_laughs_fails_fast_at_the_expanding_alias() -> None:
    issue = only_issue(BILLION_LAUGHS + "devices: *l8\n")
    assert f"aliases expand to more than {MAX_ALIAS_VALUES} values" in issue.message
    assert issue.line == 4


def test_moderate_alias_use_is_fine() -> None:
    doc = load_located("p: &p {depth_mm: 900}\ndevices:\n  - {params: *p}\n  - {params: *p}\n")
    assert doc.data == {"p": {"depth_mm": 900}, "devices": [{"params": {"depth_mm": 900}}] * 2}


def test_core_scalars_keep_their_yaml_types() -> None:
    doc = load_located("i: 0x10\nf: 1.5\nt: yes\nn: ~\ns: !!str 5\nd: 2026-01-05\ne: 1e19\n")
    assert isinstance(doc.data, dict)
    assert doc.data["i"] == 16
    assert doc.data["t"] is True
    assert doc.data["n"] is None
    assert doc.data["s"] == "5"
    assert str(doc.data["d"]) == "2026-01-05"
    assert doc.data["e"] == "1e19"  # YAML 1.1: an exponent without a dot is text


@pytest.mark.timeout(60)  # a guard against a hang, not a measurement
def test_read_text_refuses_what_is_not_a_regular_small_utf8_file(tmp_path: Path) -> None:
    def refused(path: str | Path, **kwargs: int) -> Issue:
        with pytest.raises(YamlError) as caught:
            read_text(path, **kwargs)
        (issue,) = caught.value.issues
        assert issue.file == str(path)
        return issue

    assert "not a regular file" in refused("/dev/zero").message
    assert "is a directory" in refused(tmp_path).message
    assert "No such file" in refused(tmp_path / "missing.yaml").message
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "not a regular file" in refused(fifo).message  # without waiting for a writer
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" * 300)
    assert "larger than 1000 bytes" in refused(big, max_bytes=1000).message
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_text("a: 1\n", encoding="utf-16")
    assert refused(utf16).message.startswith("not UTF-8 text (byte 0")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"a: 1\nb: caf\xe9\n")
    issue = refused(latin)
    assert (issue.line, issue.message) == (2, "not UTF-8 text (byte 11)")


def test_load_file_accepts_a_bom_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\nb: [x, x]\nb: 2\n")
    with pytest.raises(YamlError) as caught:
        load_file(path)
    assert str(caught.value) == f"{path}:3: duplicate key 'b' (first at line 2)"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert load_file(path).data == {"a": 1}


def test_a_nul_character_written_as_an_escape_is_refused_with_its_line() -> None:
    with pytest.raises(YamlError) as caught:
        load_located('a: 1\nb: "x\\0y"\nc: ["\\0"]\n', "f.yaml")
    assert [str(i) for i in caught.value.issues] == [
        "f.yaml:2: a NUL character (\\0) in a string",
        "f.yaml:3: a NUL character (\\0) in a string",
    ]
    with pytest.raises(YamlError) as caught:
        read_text("rules\x00.yaml")
    assert caught.value.issues[0].message == "cannot read: a file name cannot hold a NUL character"
