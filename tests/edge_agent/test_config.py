from pathlib import Path

import pytest

from core.issues import Issue
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


SITE = "gateway: {id: gw-01, site: huangpu/nanjing-rd/xinhua/g03}\n"
"""Line 1; the lines a test adds start at line 2."""


def only_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "edge.yaml")
    (issue,) = caught.value.issues
    return str(issue)


def test_config_problems_are_the_shared_issue_type() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("gateway: {id: gw-01}\nstate_dri: /tmp\n", "edge.yaml")
    assert caught.value.issues == (
        Issue("edge.yaml", 2, "state_dri: unknown key; did you mean state_dir?"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "uplink:\n  batch_wiat_s: 0.5\n",
            "edge.yaml:3: uplink.batch_wiat_s: unknown key; did you mean batch_wait_s?",
        ),
        (
            "devcies: []\n",
            "edge.yaml:2: devcies: unknown key; did you mean devices?",
        ),
        (
            "sources:\n  mqtt: {zigbee2mqtt: {base_topik: z2m}}\n",
            (
                "edge.yaml:3: sources.mqtt.zigbee2mqtt.base_topik: unknown key; "
                "did you mean base_topic?"
            ),
        ),
        (
            (
                "sources:\n  modbus: [{id: b, port: /dev/x}]\ndevices:\n  - id: m1\n"
                "    codec: modbus.dfrobot.sen0492\n"
                "    modbus: {bus: b, slave: 1, intervall_s: 5, registers: [{address: 0}]}\n"
            ),
            "edge.yaml:7: devices.0.modbus.intervall_s: unknown key; did you mean interval_s?",
        ),
        (
            "uplink: {backoff: {jiter: 0.1}}\n",
            "edge.yaml:2: uplink.backoff.jiter: unknown key; did you mean jitter?",
        ),
        (
            "pipeline: {zzz: 1}\n",
            (
                "edge.yaml:2: pipeline.zzz: unknown key; known: batch_size, dead_letter_ttl_days, "
                "linger_s, queue_size, stats_interval_s"
            ),
        ),
    ],
)
def test_an_unknown_key_suggests_the_nearest_known_one(text: str, expected: str) -> None:
    assert only_error(SITE + text) == expected


def test_interval_settings_take_durations_as_rule_files_do() -> None:
    config = parse_config(
        SITE
        + """\
sources:
  modbus: [{id: b, port: /dev/x, baudrate: 9600}]
  serial: [{id: panel, port: /dev/y, codec: serial.gbt26875.3, reopen_max_s: 1m}]
devices:
  - id: panel
    codec: serial.gbt26875.3
    expected_interval_s: 20m
  - id: m1
    codec: modbus.dfrobot.sen0492
    expected_interval_s: 1h
    modbus: {bus: b, slave: 1, interval_s: 30s, timeout_s: 500ms, registers: [{address: 0}]}
pipeline: {stats_interval_s: 2m}
uplink: {batch_wait_s: 200ms}
""",
        "edge.yaml",
    )
    panel, meter = config.devices
    assert (panel.expected_interval_s, meter.expected_interval_s) == (1200, 3600)
    assert meter.modbus is not None
    assert (meter.modbus.interval_s, meter.modbus.timeout_s) == (30, 0.5)
    assert config.sources.serial[0].reopen_max_s == 60
    assert (config.pipeline.stats_interval_s, config.uplink.batch_wait_s) == (120, 0.2)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("20 minutes", "not a duration: '20 minutes'"),
        ("'1200'", "not a duration: '1200'"),
        ("2d", "Input should be less than or equal to 86400"),
        ("0s", "Input should be greater than 0"),
        (".inf", "Input should be a finite number"),
        ("true", "Input should be a valid number"),
    ],
)
def test_a_bad_interval_is_an_error_on_its_line(value: str, message: str) -> None:
    text = SITE + "devices:\n  - id: b1\n    codec: lorawan.milesight.em310_udl\n"
    text += f"    expected_interval_s: {value}\n"
    error = only_error(text)
    assert error.startswith("edge.yaml:5: devices.0.expected_interval_s: ")
    assert message in error


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (
            "{id: fire-panel, port: /dev/x, codec: serial.gbt26875.3, device: panel-b3}",
            (
                "sources.serial.0.device: 'panel-b3' is not declared under devices; "
                "did you mean panel-b2?"
            ),
        ),
        (
            "{id: fire-panel, port: /dev/x, codec: serial.gbt26875.3, device: boiler}",
            "sources.serial.0.device: 'boiler' is not declared under devices: declare it there",
        ),
        (
            "{id: fire-panel, port: /dev/x, codec: serial.gbt26875.3}",
            (
                "sources.serial.0.id: frames of this port go to device 'fire-panel' (device "
                "defaults to the source id), which is not declared under devices: set device, "
                "or declare 'fire-panel'"
            ),
        ),
    ],
)
def test_a_serial_source_bound_to_an_undeclared_device_is_an_error(
    serial: str, expected: str
) -> None:
    text = SITE + f"sources:\n  serial:\n    - {serial}\n"
    text += "devices:\n  - {id: panel-b2, codec: serial.gbt26875.3, kind: fire_panel}\n"
    assert only_error(text) == f"edge.yaml:4: {expected}"


def test_a_serial_source_bound_to_a_declared_device_loads() -> None:
    text = (
        SITE + "sources:\n  serial:\n    - {id: panel-b2, port: /dev/x, codec: serial.gbt26875.3}\n"
    )
    text += "devices:\n  - {id: panel-b2, codec: serial.gbt26875.3, kind: fire_panel}\n"
    assert parse_config(text, "edge.yaml").sources.serial[0].bound_device == "panel-b2"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (
            "c1/b2",
            (
                "'c1/b2' does not start at the district of gateway.site ('huangpu'): write the full "
                "path from the district, e.g. huangpu/nanjing-rd/xinhua/g03/c1/b2"
            ),
        ),
        ("./c1/b2", "'./c1/b2' is relative: write the full path from the district"),
        (
            "huangpu/nanjing-rd/../g03",
            "'huangpu/nanjing-rd/../g03' is relative: write the full path from the district",
        ),
    ],
)
def test_a_relative_device_location_is_an_error(location: str, expected: str) -> None:
    text = SITE + "devices:\n  - id: bin-1\n    codec: lorawan.milesight.em310_udl\n"
    text += f"    location: {location}\n"
    error = only_error(text)
    assert error.startswith(f"edge.yaml:5: devices.0.location: {expected}"), error


def test_a_full_device_location_loads() -> None:
    text = SITE + "devices:\n  - id: bin-1\n    codec: lorawan.milesight.em310_udl\n"
    text += "    location: /huangpu/nanjing-rd/xinhua/g03/c1\n"
    (device,) = parse_config(text, "edge.yaml").devices
    assert str(device.info().location) == "huangpu/nanjing-rd/xinhua/g03/c1"
