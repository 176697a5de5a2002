from pathlib import Path

import pytest

from edge_agent.config import load_config, load_rules, parse_config, resolve_rule_paths
from edge_agent.config_errors import ConfigError
from rules import packs

GOOD = """\
gateway:
  id: gw-01
  site: huangpu/nanjing-rd/xinhua/g03
  timezone: Asia/Shanghai
state_dir: /tmp/steward
sources:
  mqtt:
    host: 127.0.0.1
    port: 1883
    zigbee2mqtt: {base_topic: zigbee2mqtt}
  modbus:
    - id: rs485-1
      port: /dev/ttyUSB0
rules: [rules/smoke.yaml]
outbox:
  max_records: 5000
"""

BAD = """\
gateway:
  id: "bad id with spaces"
  timezone: Mars/Olympus
sources:
  modbus:
    - id: rs485-1
      port: /dev/ttyUSB0
      parity: X
devices:
  - id: bin-07
    codec: lorawan.milesight.em310_udl
    kind: rocket
    expected_interval_s: -5
  - id: bin-08
    codec: lorawan.acme.nothing
    colour: green
outbox:
  max_records: 3
"""


def messages(err: ConfigError) -> list[str]:
    return [str(issue) for issue in err.issues]


def test_valid_config_loads_with_defaults() -> None:
    config = parse_config(GOOD, "edge.yaml")
    assert config.gateway.id == "gw-01"
    assert config.sources.mqtt is not None
    assert config.sources.mqtt.zigbee2mqtt is not None
    assert config.outbox.max_records == 5000
    assert config.uplink.port == 8883
    assert resolve_rule_paths(config, Path("/etc/steward/edge.yaml")) == (
        Path("/etc/steward/rules/smoke.yaml"),
    )


def test_every_schema_error_is_reported_at_once_with_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BAD, "edge.yaml")
    found = messages(caught.value)
    expected_lines = {
        "gateway.id": 2,
        "gateway.timezone": 3,
        "sources.modbus.0.parity": 8,
        "devices.0.kind": 12,
        "devices.0.expected_interval_s": 13,
        "devices.1.codec": 15,
        "devices.1.colour": 16,
        "outbox.max_records": 18,
    }
    assert len(found) == len(expected_lines), found
    for where, line in expected_lines.items():
        assert any(m.startswith(f"edge.yaml:{line}: {where}:") for m in found), (where, found)
    assert any("Mars/Olympus" in m for m in found)
    assert [issue.line for issue in caught.value.issues] == sorted(expected_lines.values())


def test_cross_checks_report_unknown_codecs_duplicates_and_missing_buses() -> None:
    text = (
        GOOD
        + """\
devices:
  - id: level-1
    codec: modbus.nobody.nothing
    modbus: {bus: rs485-9, slave: 3, registers: [{address: 52}]}
  - id: level-1
    codec: modbus.nobody.nothing
    modbus: {bus: rs485-1, slave: 3, registers: [{address: 52}]}
"""
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "edge.yaml")
    found = messages(caught.value)
    assert any(m.startswith("edge.yaml:19: devices.0.codec: unknown codec") for m in found), found
    assert any(
        m.startswith("edge.yaml:20: devices.0.modbus.bus: no Modbus bus 'rs485-9'") for m in found
    )
    assert any(m.startswith("edge.yaml:21: devices.1.id: id 'level-1' already used") for m in found)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("gateway:\n  id: gw\n  site: [unclosed\nrules: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (issue,) = caught.value.issues
    assert issue.file == str(path)
    assert issue.line in {3, 4}
    assert "YAML syntax" in issue.message


def test_unreadable_file_and_non_mapping_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        parse_config("- just\n- a list\n", "edge.yaml")


def test_unsafe_yaml_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"edge.yaml:2: .*python/object"):
        parse_config("gateway:\n  id: !!python/object/apply:os.system ['true']\n", "edge.yaml")


def test_rules_run_in_the_site_time_zone(tmp_path: Path) -> None:
    """A perimeter armed 22:00-06:00 is armed by the site's night, not by UTC's."""
    path = tmp_path / "edge.yaml"
    path.write_text("gateway: {id: gw-01, timezone: Asia/Shanghai}\nrules: [pack:perimeter]\n")
    ruleset = load_rules(load_config(path), path)
    assert {loaded.timezone for loaded in ruleset.rules} == {"Asia/Shanghai"}


def test_rules_name_shipped_packs(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("gateway: {id: gw-01}\nrules: [pack:fire, pack:default, site.yaml]\n")
    paths = resolve_rule_paths(load_config(path), path)
    assert paths[0] == packs.pack_path("fire")
    assert paths[1:-1] == packs.default_pack()
    assert paths[-1] == tmp_path / "site.yaml"
