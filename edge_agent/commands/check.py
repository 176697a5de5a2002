"""`edge-agent check --config FILE [--strict]`: validate the config, its rules, and their coverage.

After the config and every rule file it names are valid, checks that the rules cover what the
configured devices report (`rules.coverage`): warnings, or errors with `--strict`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.metrics import Metric
from core.site import TYPICAL_METRICS
from edge_agent.commands import Subparsers
from edge_agent.config import (
    DEFAULT_CONFIG_PATH,
    DeviceConfig,
    EdgeConfig,
    load_config,
    load_rules,
)
from edge_agent.config_errors import ConfigError
from firmware_adapters.codec import DeviceClass
from firmware_adapters.registry import CODECS
from rules import packs
from rules.coverage import Finding, coverage
from rules.errors import RuleFileError
from rules.spec import RuleSet


def register(subparsers: Subparsers) -> None:
    """Add the `check` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="validate the config and its rule files, and check the rules cover the devices",
        description=(
            "Validate the config and every rule file it names (every error with file:line), then "
            "warn about metrics a configured device reports that no rule watches and about rules "
            "no configured device can ever trigger."
        ),
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="config file")
    parser.add_argument(
        "--strict", action="store_true", help="treat coverage warnings as errors (exit 1)"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also list the rules of the shipped packs that no configured device can trigger",
    )
    parser.set_defaults(handler=run_check)


def validate(path: Path) -> tuple[EdgeConfig | None, list[str]]:
    """Validate a config file and its rule files; return the config (if valid) and every error."""
    config, _, errors = _load(path)
    return config, errors


def _load(path: Path) -> tuple[EdgeConfig | None, RuleSet | None, list[str]]:
    try:
        config = load_config(path)
    except ConfigError as err:
        return None, None, [str(issue) for issue in err.issues]
    try:
        ruleset = load_rules(config, path)
    except RuleFileError as err:
        return config, None, list(err.errors)
    return config, ruleset, []


def reported_metrics(device: DeviceConfig) -> frozenset[Metric]:
    """What a bound device reports: its binding's `metrics`, else its codec's declaration.

    A Modbus device with its own register table reports the table's metrics. A codec that serves
    many models (Zigbee2MQTT exposes) is otherwise taken to report what a device of the binding's
    kind typically does.
    """
    if device.metrics is not None:
        return frozenset(device.metrics)
    table = device.modbus.register_table() if device.modbus is not None else None
    if table is not None:
        return table.metrics
    codec = CODECS.get(device.codec)
    if codec is None:
        return frozenset()
    if codec.device_class is DeviceClass.GENERIC and device.kind in TYPICAL_METRICS:
        return codec.metrics & TYPICAL_METRICS[device.kind]
    return codec.metrics


def coverage_of(config: EdgeConfig, ruleset: RuleSet) -> list[Finding]:
    """The coverage findings of a valid config and its rules."""
    devices = {device.id: device.info() for device in config.devices}
    reported = {device.id: reported_metrics(device) for device in config.devices}
    shipped = {str(path) for path in packs.default_pack()}
    return coverage(ruleset, devices, reported, shipped)


def run_check(args: argparse.Namespace) -> int:
    """Print every error (file:line: message) and return 1, or print a summary and return 0."""
    config, ruleset, errors = _load(args.config)
    for error in errors:
        sys.stderr.write(error + "\n")
    if errors or config is None or ruleset is None:
        sys.stderr.write(f"{args.config}: {len(errors)} error(s)\n")
        return 1
    everything = coverage_of(config, ruleset)
    findings = [f for f in everything if f.kind != "inactive"]
    label = "error" if args.strict else "warning"
    for finding in findings:
        sys.stderr.write(f"{label}: {finding}\n")
    inactive = [f for f in everything if f.kind == "inactive"]
    if args.verbose:
        for finding in inactive:
            sys.stdout.write(f"not used here: {finding}\n")
    if findings and args.strict:
        sys.stderr.write(f"{args.config}: {len(findings)} coverage error(s) (--strict)\n")
        return 1
    sys.stdout.write(
        f"{args.config}: ok (gateway {config.gateway.id}, {len(config.devices)} devices, "
        f"{len(ruleset.rules) - len(inactive)} of {len(ruleset.rules)} rules apply"
        f"{f', {len(findings)} coverage warning(s)' if findings else ''})\n"
    )
    return 0
