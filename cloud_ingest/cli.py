"""`cloud-ingest`: the cloud side's server and tools.

`serve` runs the ingest server (HTTP, and the MQTT consumer with `--mqtt`); `db upgrade` migrates
the database to the newest revision; `gateways add|list|passwd|acl` manage the gateways' identities
and write the broker's password and ACL files; `users add` issues API users their tokens and
`users passwd` sets their console password;
`sites import` and `devices import` load the registry from CSV files; `validate` checks uplink
envelopes as the ingest will.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from cloud_ingest.infra.config import Settings, SettingsError, load_settings
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


def _fail(command: str, message: str, code: int = 2) -> int:
    """Print `message` (one line per problem) as the command's error; return `code`."""
    for line in message.splitlines() or [""]:
        print(f"cloud-ingest {command}: error: {line}", file=sys.stderr)
    return code


def _settings(args: argparse.Namespace) -> Settings:
    flags = {
        "database_url": args.db,
        "mqtt_url": getattr(args, "mqtt", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    return load_settings(config_file=args.config, flags=flags)


def _shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (so a port in use is reported before anything starts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # With the protocol named, asyncio recognises a TCP socket and sets TCP_NODELAY on every
    # connection; without it each keep-alive answer waited for the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _serve(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM (exit 0) or Ctrl-C (exit 130)."""
    import uvicorn  # noqa: PLC0415 - only `serve` needs the web stack

    from cloud_ingest.main import create_app  # noqa: PLC0415

    try:
        settings = _settings(args)
    except SettingsError as err:
        return _fail("serve", str(err))
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as err:
        reason = err.strerror or str(err)
        return _fail("serve", f"cannot listen on {settings.host}:{settings.port}: {reason}", 1)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    broker = settings.consumer_settings() if settings.mqtt_url else None
    logging.getLogger(__name__).info(
        "database %s; broker %s",
        _shown_url(settings.database_url),
        f"{broker.host}:{broker.port}" if broker else "none (no MQTT consumer)",
    )
    config = uvicorn.Config(
        create_app(settings),
        lifespan="on",
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    received: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        # uvicorn handles the signal while it serves, then raises it again after its shutdown.
        received.append(signum)
        server.should_exit = True

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    except SystemExit:
        return _fail("serve", "the server could not start (see the log above)", 1)
    except KeyboardInterrupt:
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return 130 if signal.SIGINT in received else 0


def _db_upgrade(args: argparse.Namespace) -> int:
    """Migrate the configured database to the newest revision."""
    from cloud_ingest import migrations  # noqa: PLC0415 - only `db` needs Alembic
    from cloud_ingest.infra.db import create_engine  # noqa: PLC0415

    try:
        settings = _settings(args)
    except SettingsError as err:
        return _fail("db upgrade", str(err))
    shown = _shown_url(settings.database_url)

    async def upgrade() -> None:
        engine = create_engine(settings.database_url)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(upgrade())
    except (SQLAlchemyError, OSError) as err:
        first = str(getattr(err, "orig", None) or err).splitlines()[0]
        return _fail("db upgrade", f"cannot migrate {shown}: {first}", 1)
    except KeyboardInterrupt:
        return 130
    print(f"{shown}: at the newest revision")
    return 0


def _gateways(args: argparse.Namespace) -> int:
    """Run one `gateways` command; a refusal is one line on stderr and a non-zero status."""
    from cloud_ingest.gateways import cli as commands  # noqa: PLC0415 - only `gateways` needs it

    def run(settings: Settings) -> None:
        if args.gateways_command == "add":
            commands.add(
                settings, args.id, company=args.company, site=args.site, rotate=args.rotate
            )
        elif args.gateways_command == "list":
            commands.list_all(settings)
        elif args.gateways_command == "passwd":
            commands.passwd(
                settings,
                args.file,
                ingest_user=args.ingest_user,
                ingest_password_file=args.ingest_password_file,
            )
        else:
            commands.acl(settings, args.file, ingest_user=args.ingest_user)

    return _admin(f"gateways {args.gateways_command}", args, run)


def _admin(name: str, args: argparse.Namespace, run: Callable[[Settings], None]) -> int:
    """Run an administration command on the settings: every failure one line, with its status."""
    from cloud_ingest.gateways.cli import CommandError  # noqa: PLC0415

    try:
        settings = _settings(args)
    except SettingsError as err:
        return _fail(name, str(err))
    try:
        run(settings)
    except CommandError as err:
        return _fail(name, str(err), err.code)
    except BrokenPipeError:
        return 141
    except (SQLAlchemyError, OSError) as err:
        first = str(getattr(err, "orig", None) or err).splitlines()[0]
        return _fail(name, f"database {_shown_url(settings.database_url)}: {first}", 1)
    except KeyboardInterrupt:
        return 130
    return 0


def _add_gateway_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: argparse.ArgumentParser
) -> None:
    gateways = sub.add_parser("gateways", help="gateway identities and the broker's files")
    gateways.set_defaults(usage=gateways.print_help)
    commands = gateways.add_subparsers(dest="gateways_command", metavar="COMMAND")
    add = commands.add_parser(
        "add",
        parents=[settings],
        help="add a gateway; print its MQTT password and HTTP token once",
        description="Add a gateway and print its MQTT password and HTTP bearer token once; only "
        "their hashes are stored. With --rotate, issue new credentials to an existing gateway.",
    )
    add.add_argument("id", metavar="ID", help="gateway id (its gateway.id, also its MQTT user)")
    add.add_argument("--company", metavar="C", help="the company operating it (required to add)")
    add.add_argument("--site", metavar="PATH", help="where it stands: district/street/...")
    add.add_argument(
        "--rotate", action="store_true", help="replace the credentials of an existing gateway"
    )
    commands.add_parser(
        "list",
        parents=[settings],
        help="list gateways: id, company, status, last seen",
        description="List the gateways: id, company, status, last seen, whether it has credentials.",
    )
    passwd = commands.add_parser(
        "passwd",
        parents=[settings],
        help="write Mosquitto's password file from the stored hashes",
        description="Write Mosquitto's password file (mode 0600, atomically) with every gateway "
        "that has credentials, and with --ingest-user the ingest's own user.",
    )
    passwd.add_argument("file", metavar="FILE", help="the password file to (over)write")
    passwd.add_argument("--ingest-user", metavar="NAME", help="add the ingest's MQTT user")
    passwd.add_argument(
        "--ingest-password-file",
        metavar="F",
        help="the ingest user's password (first line); default: generate one and print it",
    )
    acl = commands.add_parser(
        "acl",
        parents=[settings],
        help="write Mosquitto's ACL file: each gateway only its own topics",
        description="Write Mosquitto's ACL file (mode 0600, atomically): each gateway may publish "
        "steward/v1/<id>/up, /status and /config/report and read steward/v1/<id>/config; the "
        "ingest user may read steward/v1/+/up and steward/v1/+/status.",
    )
    acl.add_argument("file", metavar="FILE", help="the ACL file to (over)write")
    acl.add_argument(
        "--ingest-user",
        metavar="NAME",
        default="steward-ingest",
        help="the ingest's MQTT user (default steward-ingest)",
    )


def _users(args: argparse.Namespace) -> int:
    """Run one `users` command; a refusal is one line on stderr and a non-zero status."""
    from cloud_ingest.auth import cli as commands  # noqa: PLC0415 - only `users` needs it

    def run(settings: Settings) -> None:
        if args.users_command == "passwd":
            commands.passwd(settings, args.name)
            return
        commands.add(
            settings,
            args.name,
            role=args.role,
            company=args.company,
            area=args.area,
            rotate=args.rotate,
        )

    return _admin(f"users {args.users_command}", args, run)


def _add_user_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: argparse.ArgumentParser
) -> None:
    users = sub.add_parser("users", help="API users and their bearer tokens")
    users.set_defaults(usage=users.print_help)
    commands = users.add_subparsers(dest="users_command", metavar="COMMAND")
    add = commands.add_parser(
        "add",
        parents=[settings],
        help="add an API user; print their bearer token once",
        description="Add a user of the API and print their bearer token once; only its hash is "
        "stored. The user sees the rows of their company within their area (a site path "
        "prefix; none: the whole company); an area officer (an operator or supervisor with --area "
        "and no --company: a street officer, a grid member) sees every company's rows within the "
        "area and changes nothing; an admin sees everything. With --rotate, issue a new "
        "token to an existing user (and change --role, --company or --area if given).",
    )
    add.add_argument("name", metavar="NAME", help="user name: a letter or digit, then _ . : -")
    add.add_argument(
        "--role",
        metavar="R",
        help="operator, supervisor, technician, resident or admin (required to add)",
    )
    add.add_argument(
        "--company",
        metavar="C",
        help="the user's company (required but for admin and area officers)",
    )
    add.add_argument("--area", metavar="PATH", help="site path prefix the user may see")
    add.add_argument("--rotate", action="store_true", help="replace an existing user's token")
    passwd = commands.add_parser(
        "passwd",
        parents=[settings],
        help="set a user's console password (read from the terminal or stdin)",
        description="Set the password the user signs in to the console with; only its scrypt "
        "hash is stored. On a terminal it is asked twice; otherwise the first line of stdin is "
        "the password (`printf '%%s\\n' \"$PW\" | cloud-ingest users passwd NAME`).",
    )
    passwd.add_argument("name", metavar="NAME", help="an existing user's name")


def _registry_import(args: argparse.Namespace) -> int:
    """Run `sites import` or `devices import`; every bad row is one line on stderr."""
    from cloud_ingest.registry import cli as commands  # noqa: PLC0415 - only imports need it

    def run(settings: Settings) -> None:
        if args.command == "sites":
            commands.sites_import(settings, args.file, dry_run=args.dry_run)
        else:
            commands.devices_import(settings, args.file, dry_run=args.dry_run)

    return _admin(f"{args.command} import", args, run)


def _add_registry_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: argparse.ArgumentParser
) -> None:
    texts = {
        "sites": (
            "the site tree: district / street / community / grid / compound / building / unit",
            (
                "Import sites from a CSV file with the columns path,level,name[,company]"
                "[,plan_x,plan_y,plan_w,plan_h]. path is the '/'-joined segments from the "
                "district down and level must be the level of its depth; a parent must be in the "
                "file or already stored; an empty company takes the parent's. Known sites are "
                "updated."
            ),
        ),
        "devices": (
            "devices: kind, location, labels and plan position",
            (
                "Import devices from a CSV file with the columns id,gateway,kind,location"
                "[,labels][,plan_x,plan_y]. labels are key=value;key=value; the gateway must be "
                "stored and a known device must belong to it. Known devices are updated; a column "
                "left out keeps what they have."
            ),
        ),
    }
    for name, (summary, description) in texts.items():
        group = sub.add_parser(name, help=summary)
        group.set_defaults(usage=group.print_help)
        commands = group.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
        command = commands.add_parser(
            "import",
            parents=[settings],
            help=f"import {name} from a CSV file (all rows or none)",
            description=description + " Every bad row is reported as FILE:LINE: reason and "
            "then nothing is imported; otherwise all rows are written in one transaction.",
        )
        command.add_argument("file", metavar="FILE", help="the CSV file (UTF-8, header line)")
        command.add_argument(
            "--dry-run", action="store_true", help="check the file against the database only"
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloud-ingest", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    validate = sub.add_parser(
        "validate", help="check uplink envelope files (JSON) against schema version 1"
    )
    validate.add_argument(
        "files", nargs="+", metavar="FILE", help="envelope files, or - for JSON lines on stdin"
    )
    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument(
        "--config",
        metavar="FILE",
        help="YAML settings file (flags, then STEWARD_* variables, override it)",
    )
    settings.add_argument(
        "--db",
        metavar="URL",
        help="database URL (default sqlite+aiosqlite:///var/steward.db; or postgresql+asyncpg://...)",
    )
    serve = sub.add_parser(
        "serve",
        parents=[settings],
        help="run the ingest server (HTTP; the MQTT consumer with --mqtt)",
        description="Run the ingest server until SIGTERM (exit 0) or Ctrl-C (exit 130).",
    )
    serve.add_argument("--mqtt", metavar="URL", help="broker to consume from: mqtt://host[:port]")
    serve.add_argument("--host", metavar="H", help="HTTP address (default 127.0.0.1)")
    serve.add_argument("--port", metavar="P", type=int, help="HTTP port (default 8000)")
    db = sub.add_parser("db", help="database administration")
    db.set_defaults(usage=db.print_help)
    db_sub = db.add_subparsers(dest="db_command", metavar="COMMAND")
    db_sub.add_parser(
        "upgrade",
        parents=[settings],
        help="migrate the database to the newest revision (Alembic head)",
        description="Migrate the database to the newest revision (Alembic head).",
    )
    _add_gateway_parsers(sub, settings)
    _add_user_parsers(sub, settings)
    _add_registry_parsers(sub, settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cloud-ingest` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "validate":
        return _quietly(_validate, args.files)
    if args.command == "serve":
        return _serve(args)
    if args.command == "db" and args.db_command == "upgrade":
        return _db_upgrade(args)
    admin = {
        "gateways": _gateways,
        "users": _users,
        "sites": _registry_import,
        "devices": _registry_import,
    }
    if args.command in admin and getattr(args, f"{args.command}_command", None):
        return admin[args.command](args)
    getattr(args, "usage", parser.print_help)(sys.stderr)
    return 2


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
