"""`edge-agent check`: the rules must cover what the configured devices report.

The registry-wide tests bind one device of every codec (of every kind, for codecs that serve many
models) as an installer would, and hold the default pack to it: a new codec whose metrics no rule
watches, or a pack rule on a metric no codec reports (a bin rule on `fill_pct` while bins report
`distance_mm`), fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.metrics import Metric
from core.site import TYPICAL_METRICS, DeviceKind
from edge_agent.cli import main
from edge_agent.commands.check import coverage_of, reported_metrics
from edge_agent.config import EdgeConfig, parse_config
from firmware_adapters.codec import Codec, DeviceClass
from firmware_adapters.registry import CODECS
from rules.packs import default_pack
from rules.spec import load_rule_files
from simulators.install import gateway_config
from simulators.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "edge.example.yaml"
DEMO_SCENARIO = ROOT / "simulators" / "scenarios" / "compound_all_classes.yaml"


def _kinds(codec: Codec) -> list[DeviceKind]:
    if codec.device_class is DeviceClass.GENERIC:
        return [kind for kind in TYPICAL_METRICS if codec.metrics & TYPICAL_METRICS[kind]]
    return [DeviceKind(codec.device_class.value)]


def _installed(codec: Codec, kind: DeviceKind, index: int) -> dict[str, object]:
    """A binding as the installation guide says to write it for this kind of device."""
    binding: dict[str, object] = {
        "id": f"dev-{index}",
        "codec": codec.id,
        "kind": kind.value,
        "location": "hp/njr/xh/g03/c1/b1/u1",
        "expected_interval_s": 600,
    }
    reported = codec.metrics & TYPICAL_METRICS.get(kind, codec.metrics)
    if Metric.DISTANCE_MM in reported and kind is DeviceKind.BIN:
        binding["derive"] = {"fill_pct": {"from": "distance_mm", "empty_mm": 1300, "full_mm": 200}}
    elif Metric.DISTANCE_MM in reported and kind in {DeviceKind.MANHOLE, DeviceKind.LEVEL}:
        binding["derive"] = {"water_level_mm": {"from": "distance_mm", "depth_mm": 2500}}
    elif kind is DeviceKind.PERIMETER:
        flags = [m.value for m in (Metric.CONTACT_OPEN, Metric.OCCUPANCY) if m in reported]
        if flags:
            binding["derive"] = {"intrusion": {"from": flags}}
    return binding


def _registry_config(codecs: list[Codec]) -> EdgeConfig:
    devices = [
        _installed(codec, kind, i)
        for i, (codec, kind) in enumerate((c, k) for c in codecs for k in _kinds(c))
    ]
    doc = {"gateway": {"id": "gw-registry"}, "devices": devices, "rules": ["pack:default"]}
    return parse_config(yaml.safe_dump(doc), "registry.yaml")


RULESET = load_rule_files(default_pack(), timezone="Asia/Shanghai")


@pytest.mark.parametrize("codec_id", sorted(CODECS))
def test_every_metric_a_codec_reports_is_watched_or_declared_telemetry(codec_id: str) -> None:
    findings = coverage_of(_registry_config([CODECS[codec_id]]), RULESET)
    assert [str(f) for f in findings if f.kind == "unwatched"] == []


def test_every_rule_of_the_default_pack_is_triggered_by_some_shipped_codec() -> None:
    findings = coverage_of(_registry_config(list(CODECS.values())), RULESET)
    assert [str(f) for f in findings if f.kind != "unwatched"] == []
    assert [str(f) for f in findings] == []


def test_a_codec_serving_many_models_reports_what_its_kind_does() -> None:
    smoke = parse_config(
        "gateway: {id: g}\nsources: {mqtt: {zigbee2mqtt: {}}}\ndevices:\n"
        "  - {id: s, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: s}\n"
        "  - {id: t, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: t,"
        " metrics: [smoke, battery_pct]}\n",
        "c.yaml",
    ).devices
    assert Metric.SMOKE in reported_metrics(smoke[0])
    assert Metric.CONTACT_OPEN not in reported_metrics(smoke[0])
    assert reported_metrics(smoke[1]) == {Metric.SMOKE, Metric.BATTERY_PCT}


def test_the_example_config_passes_strict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--strict", "--config", str(EXAMPLE)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_demo_config_passes_strict(tmp_path: Path) -> None:
    config = gateway_config(
        load_scenario(DEMO_SCENARIO),
        state_dir=tmp_path / "state",
        local=("127.0.0.1", 1883),
        uplink=("127.0.0.1", 1884),
    )
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check", "--strict", "--config", str(path)]) == 0


BIN_WITHOUT_FILL = """\
gateway: {id: gw-1}
sources: {mqtt: {chirpstack: {}}}
devices:
  - id: bin-1
    codec: lorawan.milesight.em310_udl
    kind: bin
    location: hp/njr/xh/g03/c1
    dev_eui: "24e124713d290785"
rules: [pack:bin, pack:health, site.yaml]
"""

SITE_RULES = """\
rules:
  - id: bins_water_level
    description: A rule on a metric no bin reports.
    match: {metric: water_level_mm, kinds: [bin]}
    above: 10
    severity: warning
"""


@pytest.fixture
def bin_site(tmp_path: Path) -> Path:
    """A gateway with a bin bound without its fill, and a site rule no device can trigger."""
    config = tmp_path / "edge.yaml"
    config.write_text(BIN_WITHOUT_FILL)
    (tmp_path / "site.yaml").write_text(SITE_RULES)
    return config


def test_a_bin_bound_without_its_fill_is_warned_about_and_strict_fails(
    bin_site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = bin_site
    assert main(["check", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert "warning: bin-1: reports distance_mm (bin, lorawan.milesight.em310_udl)" in err
    assert f"warning: {tmp_path / 'site.yaml'}:2: bins_water_level: no configured device" in err
    assert "reports water_level_mm" in err
    # the shipped pack's bin rules on fill_pct are not the site's mistake: not listed by default
    assert "bin_fill_high" not in err
    assert main(["check", "--strict", "--config", str(config)]) == 1
    assert "error: bin-1: reports distance_mm" in capsys.readouterr().err


def test_verbose_lists_the_shipped_rules_that_do_not_apply(
    bin_site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["check", "--verbose", "--config", str(bin_site)])
    out = capsys.readouterr().out
    assert "not used here:" in out
    assert "bin_fill_high: no configured device it matches (kinds bin) reports fill_pct" in out


def test_a_derivation_from_a_metric_the_codec_never_reports_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(
        BIN_WITHOUT_FILL.replace(
            '    dev_eui: "24e124713d290785"\n',
            '    dev_eui: "24e124713d290785"\n'
            "    derive:\n"
            "      fill_pct: {from: distance_mm, empty_mm: 100, full_mm: 900}\n"
            "      intrusion: {from: contact_open}\n"
            "      bogus_pct: {from: distance_mm}\n",
        ).replace("rules: [pack:bin, pack:health, site.yaml]", "rules: [pack:bin]")
    )
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}:10: devices.0.derive.fill_pct.full_mm: the full line must be nearer" in err
    assert f"{config}:12: devices.0.derive.bogus_pct: unknown metric 'bogus_pct'" in err
    assert (
        f"{config}:11: devices.0.derive.intrusion.from: codec lorawan.milesight.em310_udl "
        "never reports contact_open"
    ) in err


def test_an_unknown_pack_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(BIN_WITHOUT_FILL.replace("pack:health", "pack:helth"))
    assert main(["check", "--config", str(config)]) == 1
    assert "no rule pack 'helth'" in capsys.readouterr().err
