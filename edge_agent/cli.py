"""`edge-agent`: run the gateway daemon and the tools around it (decode, rules, check, doctor)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edge_agent.commands import Handler

# Each command module registers its subcommands; the list is explicit, in help order.
COMMAND_MODULES: tuple[str, ...] = ("run", "check", "doctor", "rules", "decode")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    import importlib  # noqa: PLC0415 - command modules are loaded only when the CLI runs

    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"edge_agent.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `edge-agent` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
