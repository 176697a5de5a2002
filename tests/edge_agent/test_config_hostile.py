"""Broken and hostile configuration files: each gives located errors, never a traceback or a hang."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.commands.check import validate
from edge_agent.config import load_config, load_rules, parse_config
from edge_agent.config_errors import ConfigError, ConfigIssue
from rules.errors import RuleFileError

GATEWAY = "gateway: {id: gw-01}\n"


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "edge.yaml")
    assert all(issue.file == "edge.yaml" and issue.line >= 1 for issue in caught.value.issues)
    return list(caught.value.issues)


def only(text: str) -> str:
    (issue,) = issues_of(text)
    return str(issue)


@pytest.mark.parametrize("zone", ["Asia", "A" * 300, "../../etc/passwd", "zone.tab", "Asia/"])
def test_any_time_zone_the_database_cannot_load_is_an_error(zone: str) -> None:
    message = only(f"gateway:\n  id: gw-01\n  timezone: '{zone}'\n")
    assert message.startswith("edge.yaml:3: gateway.timezone: unknown time zone")
    assert len(message) < 200


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("uplink: {port: true}", "uplink.port: Input should be a valid integer"),
        ("uplink: {tls: 1}", "uplink.tls: Input should be a valid boolean"),
        ("uplink: {batch_wait_s: .nan}", "uplink.batch_wait_s: Input should be a finite number"),
        ("pipeline: {dead_letter_ttl_days: .inf}", "pipeline.dead_letter_ttl_days: Input should"),
        ("pipeline: {linger_s: '0.1'}", "pipeline.linger_s: Input should be a valid number"),
        ("outbox: {max_records: 10000000000000000000}", "outbox.max_records: Input should be less"),
        ("sources: {modbus: [{id: b, port: /dev/x, stopbits: true}]}", "stopbits: Input should"),
        ("sources: {modbus: [{id: b, port: /dev/x, baudrate: 1.0e+19}]}", "baudrate: Input should"),
    ],
)
def test_numbers_are_strict_finite_and_bounded(line: str, where: str) -> None:
    message = only(GATEWAY + line + "\n")
    assert message.startswith("edge.yaml:2: ")
    assert where in message


def test_a_site_id_longer_than_a_fingerprint_allows_is_an_error() -> None:
    message = only(f"gateway:\n  id: gw-01\n  site_id: {'s' * 300}\n")
    assert message.startswith("edge.yaml:3: gateway.site_id: String should have at most 256")


def test_an_infinite_device_interval_is_an_error_on_its_line() -> None:
    text = (
        GATEWAY + "devices:\n  - id: bin-1\n    codec: lorawan.milesight.em310_udl\n"
        "    expected_interval_s: .inf\n"
    )
    assert only(text).startswith("edge.yaml:5: devices.0.expected_interval_s:")


@pytest.mark.timeout(60)  # a guard against a hang, not a measurement
def test_a_rule_file_that_is_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(GATEWAY + "rules: [/dev/zero, rules.d]\n")
    (tmp_path / "rules.d").mkdir()
    with pytest.raises(RuleFileError) as caught:
        load_rules(load_config(path), path)
    assert caught.value.errors == (
        "/dev/zero: cannot read rule file: not a regular file",
        f"{tmp_path / 'rules.d'}: cannot read rule file: is a directory, not a file",
    )
    _, errors = validate(path)  # edge-agent check
    assert errors == list(caught.value.errors)


@pytest.mark.parametrize("name", ["/dev/zero", "."])
def test_a_config_that_is_not_a_regular_file_is_an_error(name: str) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(Path(name))


def test_an_empty_config_and_a_nul_character_name_their_line() -> None:
    assert only("") == "edge.yaml:1: the file is empty: a config is a mapping"
    assert only("# nothing yet\n") == "edge.yaml:1: the file is empty: a config is a mapping"
    assert only(GATEWAY + "state_dir: /var/\x00lib\n") == (
        "edge.yaml:2: non-printable character U+0000 (NUL)"
    )


def test_a_utf16_config_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(GATEWAY, encoding="utf-16")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:1: not UTF-8 text (byte 0: a UTF-16 byte order mark)"


@pytest.mark.timeout(60)  # a guard against a hang, not a measurement
def test_billion_laughs_under_devices_fails_fast() -> None:
    laughs = "x0: &l0 [a, a, a, a, a, a, a, a, a, a]\n" + "".join(
        f"x{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 9)
    )
    message = only(GATEWAY + laughs + "devices: *l8\n")
    assert "aliases expand to more than" in message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GATEWAY + "state_dir: 2024-13-01\n", 2, "month must be in 1..12"),
        (GATEWAY + "state_dir: !!int abc\n", 2, "!!int 'abc'"),
        (GATEWAY + "uplink: {tls: !!bool maybe}\n", 2, "!!bool 'maybe'"),
        (GATEWAY + "uplink: {port: " + "9" * 5000 + "}\n", 2, "more than 100 characters"),
        (GATEWAY + "x: &a [*a]\n", 2, "refers to itself"),
        (GATEWAY + "devices: " + "[" * 1000 + "]" * 1000 + "\n", 2, "nest"),
        (GATEWAY + "? [a]\n: 1\n", 2, "plain value"),
        (GATEWAY + "state_dir: /a\nstate_dir: /b\n", 3, "duplicate key 'state_dir'"),
        (GATEWAY + "state_dir: !custom /a\n", 2, "tag '!custom' is not allowed"),
    ],
)
def test_hostile_yaml_is_a_located_error(text: str, line: int, words: str) -> None:
    message = only(text)
    assert message.startswith(f"edge.yaml:{line}: "), message
    assert words in message


def test_a_gateway_id_with_a_colon_is_refused_as_it_is_the_mqtt_user_name() -> None:
    message = only("gateway: {id: 'gw:01'}\n")
    assert message.startswith("edge.yaml:1: gateway.id: ':' cannot be in a gateway id")


def test_a_nul_in_a_file_name_is_an_error_not_a_crash() -> None:
    # The minimal input `bench/fuzz.py` found: `stat()` raised ValueError on the NUL.
    message = only(GATEWAY + 'uplink:\n  tls: true\n  ca_file: "\\0"\n')
    assert message == "edge.yaml:4: a NUL character (\\0) in a string"
