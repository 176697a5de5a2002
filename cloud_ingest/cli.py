"""`cloud-ingest`: tools of the cloud side. `validate` checks uplink envelopes as the ingest will."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from core.envelope_json import loads
from core.errors import EnvelopeError


def _validate(paths: Sequence[str]) -> int:
    """Check each envelope file (or `-` for one envelope per stdin line); print one JSON line each."""
    failures = 0
    sources: list[tuple[str, bytes]] = []
    for path in paths:
        if path == "-":
            sources += [
                (f"<stdin>:{n}", line.encode())
                for n, line in enumerate(sys.stdin, 1)
                if line.strip()
            ]
        else:
            try:
                sources.append((path, Path(path).read_bytes()))
            except OSError as err:
                print(
                    json.dumps(
                        {"source": path, "ok": False, "error": {"field": "", "reason": str(err)}}
                    )
                )
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
                        "error": {"field": err.field, "reason": err.reason},
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
    return _validate(args.files)


if __name__ == "__main__":
    sys.exit(main())
