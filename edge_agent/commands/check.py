"""`edge-agent check --config FILE`: validate the config and every rule file it names."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.commands import Subparsers
from edge_agent.config import DEFAULT_CONFIG_PATH, EdgeConfig, load_config, resolve_rule_paths
from edge_agent.config_errors import ConfigError
from rules.errors import RuleFileError
from rules.spec import load_rule_files


def register(subparsers: Subparsers) -> None:
    """Add the `check` subcommand."""
    parser = subparsers.add_parser("check", help="validate the config and its rule files")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="config file")
    parser.set_defaults(handler=run_check)


def validate(path: Path) -> tuple[EdgeConfig | None, list[str]]:
    """Validate a config file and its rule files; return the config (if valid) and every error."""
    try:
        config = load_config(path)
    except ConfigError as err:
        return None, [str(issue) for issue in err.issues]
    try:
        load_rule_files(resolve_rule_paths(config, path))
    except RuleFileError as err:
        return config, list(err.errors)
    return config, []


def run_check(args: argparse.Namespace) -> int:
    """Print every error (file:line: message) and return 1, or print a summary and return 0."""
    config, errors = validate(args.config)
    for error in errors:
        sys.stderr.write(error + "\n")
    if errors or config is None:
        sys.stderr.write(f"{args.config}: {len(errors)} error(s)\n")
        return 1
    sys.stdout.write(
        f"{args.config}: ok (gateway {config.gateway.id}, {len(config.devices)} devices, "
        f"{len(config.rules)} rule files)\n"
    )
    return 0
