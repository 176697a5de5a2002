"""`edge-agent rules check FILE...` and `edge-agent rules test FILE...`."""

from __future__ import annotations

import argparse
import sys

from edge_agent.commands import Subparsers
from rules.errors import RuleFileError
from rules.spec import load_rule_files
from rules.testing import run_test_file


def register(subparsers: Subparsers) -> None:
    """Add `rules check` and `rules test`."""
    parser = subparsers.add_parser("rules", help="check rule files and run rule unit tests")
    commands = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = commands.add_parser("check", help="validate rule files; print every error as file:line")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--timezone", default="UTC", help="the site's time zone (default UTC)")
    check.set_defaults(handler=run_check)
    test = commands.add_parser("test", help="run promtool-style rule test files")
    test.add_argument("files", nargs="+", metavar="FILE")
    test.set_defaults(handler=run_test)


def run_check(args: argparse.Namespace) -> int:
    """Validate the files as one rule set; exit 0 when valid, 1 otherwise."""
    try:
        ruleset = load_rule_files(args.files, timezone=args.timezone)
    except RuleFileError as err:
        sys.stderr.write("\n".join(err.errors) + "\n")
        sys.stderr.write(f"FAILED: {len(err.errors)} error(s)\n")
        return 1
    sys.stdout.write(
        f"OK: {len(ruleset.rules)} rule(s), {len(ruleset.maintenance_windows)} maintenance "
        f"window(s) in {len(ruleset.sources)} file(s)\n"
    )
    return 0


def run_test(args: argparse.Namespace) -> int:
    """Run every test of every file; print a diff per failing test; exit 0 if all pass, 1 otherwise."""
    failed = passed = 0
    for path in args.files:
        try:
            outcomes = run_test_file(path)
        except RuleFileError as err:
            sys.stdout.write("\n".join(err.errors) + "\n")
            failed += 1
            continue
        for outcome in outcomes:
            if outcome.passed:
                passed += 1
                sys.stdout.write(f"PASS {path}: {outcome.name}\n")
                continue
            failed += 1
            sys.stdout.write(f"FAIL {path}: {outcome.name}\n")
            sys.stdout.write("".join(f"    {line}\n" for line in outcome.diff))
    sys.stdout.write(f"{passed} passed, {failed} failed\n")
    return 0 if failed == 0 else 1
