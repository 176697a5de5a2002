"""`edge-agent run --config FILE [--clock SPEC]`: run the gateway daemon until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from core.clock import CLOCK_SPEC_EXAMPLE, CLOCK_SPEC_SYNTAX, ScaledClock, parse_clock_spec
from edge_agent.commands import Subparsers
from edge_agent.commands.check import validate
from edge_agent.config import DEFAULT_CONFIG_PATH


def register(subparsers: Subparsers) -> None:
    """Add the `run` subcommand."""
    parser = subparsers.add_parser("run", help="run the gateway daemon")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="config file")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=10.0, help="seconds to flush the outbox on SIGTERM"
    )
    parser.add_argument(
        "--clock",
        type=_clock,
        default=None,
        metavar="SPEC",
        help=(
            f"for simulation and testing only: run on a simulated clock {CLOCK_SPEC_SYNTAX} "
            f"(e.g. {CLOCK_SPEC_EXAMPLE}): the time START at the Unix time ORIGIN, running SPEED "
            "times real time, shared with `propsim run --speed SPEED --origin ORIGIN`; rule "
            "timers, receive times, statistics and alarm times follow it. Default: the system clock"
        ),
    )
    parser.set_defaults(handler=run_agent)


def _clock(text: str) -> ScaledClock:
    try:
        return parse_clock_spec(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run_agent(args: argparse.Namespace) -> int:
    """Validate the config (refusing to start on any error), then run the agent."""
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config, errors = validate(args.config)
    if errors or config is None:
        for error in errors:
            sys.stderr.write(error + "\n")
        sys.stderr.write(f"{args.config}: refusing to start\n")
        return 2
    from edge_agent.app import Agent  # noqa: PLC0415 - the daemon's imports only when it runs

    agent = Agent(config, args.config, clock=args.clock, drain_timeout_s=args.drain_timeout)
    return asyncio.run(agent.run())
