"""`cloud-ingest`: tools of the cloud side. `validate` checks uplink envelopes as the ingest will."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from core.envelope_json import loads
from core.errors import EnvelopeError
from core.types import ENVELOPE_LIMITS


def _read(path: str) -> bytes:
    """Read a file, but no more than one byte over the envelope limit (the check reports it)."""
    with Path(path).open("rb") as file:
        return file.read(ENVELOPE_LIMITS.max_bytes + 1)


def _validate(paths: Sequence[str]) -> int:
    """Check each envelope file (or `-` for one envelope per stdin line); print one JSON line each.

    A refusal prints the offending field, the reason in words and its `code` (`too_large`,
    `too_deep`, `non_finite`, `bad_json`, `unsupported_version`, `schema`; `unreadable` for a
    file that cannot be read). Input is taken as bytes, so invalid UTF-8 is reported, not fatal.
    """
    failures = 0
    sources: list[tuple[str, bytes]] = []
    for path in paths:
        if path == "-":
            sources += [
                (f"<stdin>:{n}", line) for n, line in enumerate(sys.stdin.buffer, 1) if line.strip()
            ]
        else:
            try:
                sources.append((path, _read(path)))
            except OSError as err:
                error = {"field": "", "reason": str(err), "code": "unreadable"}
                print(json.dumps({"source": path, "ok": False, "error": error}))
                failures += 1
    for name, data in sources:
        try:
            envelope = loads(data)
        except EnvelopeError as err:
            failures += 1
            print(
                json.dumps(
                    {
                        "source": name,
                        "ok": False,
                        "error": {"field": err.field, "reason": err.reason, "code": err.code},
                    }
                )
            )
            continue
        print(
            json.dumps(
                {
                    "source": name,
                    "ok": True,
                    "gateway_id": envelope.gateway_id,
                    "batch_id": str(envelope.batch_id),
                    "readings": len(envelope.readings),
                    "alarm_events": len(envelope.alarm_events),
                }
            )
        )
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cloud-ingest` console script."""
    parser = argparse.ArgumentParser(prog="cloud-ingest", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    validate = sub.add_parser(
        "validate", help="check uplink envelope files (JSON) against schema version 1"
    )
    validate.add_argument(
        "files", nargs="+", metavar="FILE", help="envelope files, or - for JSON lines on stdin"
    )
    args = parser.parse_args(argv)
    if args.command != "validate":
        parser.print_help(sys.stderr)
        return 2
    return _quietly(_validate, args.files)


def _quietly(command: Callable[[Sequence[str]], int], files: Sequence[str]) -> int:
    """Run a command; a closed stdout (`| head`) exits 141 and Ctrl-C 130, without a traceback."""
    try:
        code = command(files)
        sys.stdout.flush()
    except BrokenPipeError:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
