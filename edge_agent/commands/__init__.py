"""Subcommands of `edge-agent`; each module has `register(subparsers)` and sets `handler`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # noqa: SLF001
"""The object `ArgumentParser.add_subparsers()` returns."""

Handler = Callable[[argparse.Namespace], int]
"""Runs a parsed subcommand and returns the process exit code."""
