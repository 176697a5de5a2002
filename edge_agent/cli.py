"""`edge-agent`: run the gateway daemon and the tools around it (decode, rules, check, doctor)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from edge_agent.commands import Handler

# Each command module registers its subcommands; the list is explicit, in help order.
COMMAND_MODULES: tuple[str, ...] = ("run", "check", "doctor", "rules", "decode")

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as a shell reports a program the signal ended."""
EXIT_BROKEN_PIPE = 141
"""Exit code when the reader of stdout went away (128 + SIGPIPE), e.g. `edge-agent codecs | head`."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    import importlib  # noqa: PLC0415 - command modules are loaded only when the CLI runs

    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"edge_agent.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `edge-agent` console script.

    A closed stdout (`| head`) ends the command quietly with 141, Ctrl-C with 130; neither prints
    a traceback.
    """
    try:
        code = _run(argv)
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
