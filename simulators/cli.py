"""`propsim`: run scenarios, single virtual devices, a load generator, or generate data offline.

Every user mistake (a bad option, scenario or codec id, a broker that is not there) is one line on
stderr, never a traceback: exit code 2 for what the command line or a scenario says, 1 for what the
machine lacks. `--broker auto` starts a Mosquitto for the run on a free loopback port.
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
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import aiomqtt
import pydantic

from core.clock import clock_spec
from firmware_adapters.registry import CODECS
from simulators.mqtt_devices import parse_broker_url
from simulators.scenario import Scenario, ScenarioError, load_scenario
from simulators.services import Mosquitto, ServiceError
from simulators.single_devices import MQTT_CODECS, mqtt_devices, serial_device

log = logging.getLogger("propsim")
T = TypeVar("T")

SHIPPED_SCENARIOS = Path(__file__).resolve().parent / "scenarios"
"""The example scenarios installed with the package (`propsim scenarios` lists them)."""
AUTO_BROKER = "auto"
"""`--broker auto`: start a Mosquitto on a free 127.0.0.1 port for the run, stop it afterwards."""
BROKER_HELP = "mqtt://HOST:PORT of the broker, or `auto` to start a Mosquitto for the run"
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143
_CONNECT_TIMEOUT_S = 3.0


class UsageError(Exception):
    """A mistake on the command line or in what it names: one line, exit code 2."""


class MissingServiceError(Exception):
    """Something the command needs is not there (a broker, a program): one line, exit code 1."""


def _common_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--duration", type=float, default=None, help="stop after this many simulated s")
    p.add_argument("--truth", type=Path, default=None, help="write ground truth (JSON lines) here")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `propsim`."""
    parser = argparse.ArgumentParser(prog="propsim", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="play a scenario in real time onto a broker and ptys")
    run.add_argument("scenario", type=Path)
    run.add_argument("--broker", default=None, help=f"{BROKER_HELP} (for MQTT devices)")
    run.add_argument("--serial-dir", type=Path, default=Path("/tmp/steward-sim"))  # noqa: S108
    run.add_argument("--receiver", default=None, help="host:port of the SIA DC-09 receiver")
    run.add_argument(
        "--origin",
        type=float,
        default=None,
        metavar="EPOCH",
        help=(
            "Unix time at which t=0 is played (wait until then); give the same value to "
            "`edge-agent run --clock` (see `propsim clock`) to share one simulated clock"
        ),
    )
    _common_run(run)

    serial = sub.add_parser("serial", help="one virtual serial device on a pty with a stable link")
    serial.add_argument("protocol", choices=["gbt26875", "contact-id", "modbus"])
    serial.add_argument("--link", type=Path, required=True, help="symlink the agent opens")
    serial.add_argument("--interval", type=float, default=10.0, help="report interval, s")
    serial.add_argument("--alarm-at", type=float, default=None, help="raise an alarm at this s")
    serial.add_argument("--alarm-for", type=float, default=60.0, help="alarm length, s")
    serial.add_argument("--slave-id", type=_slave_id, default=1, help="Modbus slave id, 1-247")
    serial.add_argument("--timeout", type=float, default=10.0, help="GB/T confirm timeout, s")
    serial.add_argument("--unplug-at", type=float, default=None, help="pull the cable at this s")
    serial.add_argument("--unplug-for", type=float, default=10.0, help="and plug it in after, s")
    _common_run(serial)

    mqtt = sub.add_parser("mqtt", help="Zigbee2MQTT or ChirpStack devices on a broker")
    mqtt.add_argument("kind", choices=["zigbee2mqtt", "chirpstack"])
    mqtt.add_argument("--broker", required=True, help=BROKER_HELP)
    mqtt.add_argument("--devices", type=int, default=3)
    mqtt.add_argument("--interval", type=float, default=10.0)
    mqtt.add_argument("--codec", default=None, help="codec id of the simulated model")
    mqtt.add_argument("--alarm-at", type=float, default=None)
    mqtt.add_argument("--alarm-for", type=float, default=60.0)
    _common_run(mqtt)

    fleet = sub.add_parser("fleet", help="load generator: many gateways at a target rate")
    fleet.add_argument("--gateways", type=int, default=10)
    fleet.add_argument("--devices", type=int, default=100)
    fleet.add_argument("--rate", type=float, default=1000.0, help="messages per second in total")
    fleet.add_argument("--broker", required=True, help=BROKER_HELP)
    fleet.add_argument("--duration", type=float, default=10.0)
    fleet.add_argument("--processes", type=int, default=2)
    fleet.add_argument("--kind", choices=["envelope", "chirpstack"], default="envelope")
    fleet.add_argument("--qos", type=int, choices=[0, 1], default=0)

    gen = sub.add_parser("generate", help="generate a scenario offline (simulated time)")
    gen.add_argument("scenario", type=Path)
    gen.add_argument("--days", type=float, default=None, help="horizon (default: the scenario's)")
    gen.add_argument("--out", type=Path, required=True, help="JSON lines of emissions")
    gen.add_argument("--truth", type=Path, default=None)
    gen.add_argument("--seed", type=int, default=None)

    _add_clock(sub)

    check = sub.add_parser("check", help="validate scenario files (errors with file:line)")
    check.add_argument("scenarios", type=Path, nargs="+")

    sub.add_parser("scenarios", help="list the example scenarios shipped with propsim")
    return parser


def _slave_id(text: str) -> int:
    """A Modbus RTU slave address: 1 to 247 (0 is broadcast, 248-255 are reserved)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Modbus slave id (1-247)") from None
    if not 1 <= value <= 247:  # noqa: PLR2004 - the Modbus RTU address range
        raise argparse.ArgumentTypeError(f"{value} is not a Modbus slave id (1-247)")
    return value


def _add_clock(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    clock = sub.add_parser(
        "clock", help="print the `edge-agent run --clock` spec of a scenario played from --origin"
    )
    clock.add_argument("scenario", type=Path)
    clock.add_argument("--speed", type=float, default=1.0, help="as given to `propsim run`")
    clock.add_argument(
        "--origin", type=float, required=True, metavar="EPOCH", help="as given to `propsim run`"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `propsim` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        code = int(_dispatch(args))
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
    except BrokenPipeError:  # `propsim ... | head`: the reader has what it wanted
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except _USER_ERRORS as err:
        message, code = _explain(err)
        print(message, file=sys.stderr)
    return code


_USER_ERRORS = (
    ScenarioError,
    pydantic.ValidationError,
    KeyError,
    UsageError,
    ValueError,
    MissingServiceError,
    ServiceError,
    OSError,
    aiomqtt.MqttError,
)
"""What a user's mistake or a missing service raises: reported in one line, never a traceback."""


def _explain(err: Exception) -> tuple[str, int]:
    """The line to print and the exit code: 2 for what the user asked, 1 for what is missing."""
    if isinstance(err, ScenarioError):
        return str(err), 2  # every problem, each with its file:line
    if isinstance(err, pydantic.ValidationError):  # options that make no valid scenario
        return f"propsim: {_one_line(err)}", 2
    if isinstance(err, KeyError):  # a name that is not there: the message is its only argument
        return f"propsim: {err.args[0] if err.args else err}", 2
    if isinstance(err, UsageError | ValueError):  # a bad option, or what the transports cannot play
        return f"propsim: {err}", 2
    return f"propsim: {err}", 1  # a broker, receiver, pty or program is not there


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _one_line(err: pydantic.ValidationError) -> str:
    """Every distinct problem once (the same mistake on three devices is one mistake)."""
    seen: dict[str, None] = {}
    for problem in err.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"] if not isinstance(part, int))
        message = str(problem["msg"]).removeprefix("Value error, ")
        seen.setdefault(f"{where}: {message}" if where else message)
    return "; ".join(seen)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        for path in args.scenarios:
            load_scenario(path)
            print(f"{path}: ok")
        return 0
    if args.command in _TOOLS:
        return _TOOLS[args.command](args)
    if args.command == "run":
        scenario = load_scenario(args.scenario)
        return _play(scenario, args, broker=args.broker, serial_dir=args.serial_dir)
    duration = args.duration or 86_400.0
    if args.command == "serial":
        scenario = serial_device(
            args.protocol,
            args.link,
            interval=args.interval,
            duration=duration,
            seed=args.seed or 0,
            alarm_at=args.alarm_at,
            alarm_for=args.alarm_for,
            slave_id=args.slave_id,
            unplug=None if args.unplug_at is None else (args.unplug_at, args.unplug_for),
        )
        return _play(scenario, args, None)
    _check_mqtt_codec(args.kind, args.codec)
    scenario = mqtt_devices(
        args.kind,
        count=args.devices,
        codec=args.codec,
        interval=args.interval,
        duration=duration,
        seed=args.seed or 0,
        alarm_at=args.alarm_at,
        alarm_for=args.alarm_for,
    )
    return _play(scenario, args, broker=args.broker)


async def _stoppable(run: Coroutine[object, object, T]) -> T:
    """Run until done, or until SIGTERM cancels it (as Ctrl-C does): the runner then cleans up."""
    task = asyncio.ensure_future(run)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


def _check_mqtt_codec(kind: str, codec: str | None) -> None:
    """Refuse a `propsim mqtt --codec` that is unknown or of another transport, before any work."""
    if codec is None:
        return
    transport = MQTT_CODECS[kind][0].split(".", 1)[0]
    fitting = sorted(c for c in CODECS if c.startswith(f"{transport}."))
    if codec not in CODECS:
        raise UsageError(f"--codec {codec}: no such codec; {kind} devices: {', '.join(fitting)}")
    if codec not in fitting:
        raise UsageError(
            f"--codec {codec}: not a {transport} codec; use one of {', '.join(fitting)}"
        )


def _needs_broker(scenario: Scenario) -> bool:
    return any(d.transport in {"lorawan", "zigbee2mqtt"} for d in scenario.devices)


@contextlib.contextmanager
def _broker(url: str) -> Iterator[str]:
    """The broker to use: `auto` starts one for the run; any other is checked to answer first."""
    if url == AUTO_BROKER:
        with Mosquitto() as broker:
            print(f"propsim: started Mosquitto at {broker.url} for this run", file=sys.stderr)
            yield broker.url
        return
    host, port = parse_broker_url(url)
    try:
        socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as err:
        reason = err.strerror or str(err)
        raise MissingServiceError(
            f"no MQTT broker answers at {url} ({reason}); start one there "
            f"(e.g. `mosquitto -p {port}`) or use --broker auto"
        ) from None
    yield url


def _play(
    scenario: Scenario,
    args: argparse.Namespace,
    broker: str | None,
    serial_dir: Path = Path("/tmp/steward-sim"),  # noqa: S108 - the documented default
) -> int:
    from simulators.runner import RunOptions, ScenarioRunner  # noqa: PLC0415 - loads aiomqtt lazily

    if not _needs_broker(scenario):
        broker = None
    elif broker is None:
        raise UsageError(
            "this scenario has MQTT devices (lorawan, zigbee2mqtt): give a broker URL, "
            "--broker mqtt://HOST:PORT, or --broker auto to start a Mosquitto for the run"
        )
    with _broker(broker) if broker else contextlib.nullcontext(None) as broker_url:
        options = RunOptions(
            seed=args.seed,
            speed=args.speed,
            broker_url=broker_url,
            serial_dir=serial_dir,
            duration=args.duration,
            gbt_timeout_s=getattr(args, "timeout", 10.0),
            receiver=getattr(args, "receiver", None),
            origin=getattr(args, "origin", None),
        )
        runner = ScenarioRunner(scenario, options)
        # The truth is always written, to /dev/null without --truth, so the count is always true.
        target = args.truth or Path(os.devnull)
        with target.open("w", encoding="utf-8") as truth:
            try:
                stats = asyncio.run(_stoppable(runner.run(truth)))
            except asyncio.CancelledError:  # SIGTERM: stopped, its ptys and connections closed
                return EXIT_TERMINATED
    print(json.dumps({"emitted": stats.emitted, "lost": stats.lost, "truth": stats.truth}))
    return 0


def _clock(args: argparse.Namespace) -> int:
    start = load_scenario(args.scenario).start
    print(clock_spec(start, args.origin, args.speed))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from simulators.timeline import generate  # noqa: PLC0415
    from simulators.verify import at_time  # noqa: PLC0415

    scenario = load_scenario(args.scenario)
    duration = args.days * 86_400 if args.days is not None else None
    out = generate(scenario, seed=args.seed, duration=duration)
    codec_of = {d.id: d.codec for d in scenario.devices}
    with args.out.open("w", encoding="utf-8") as f:
        for e in out.emissions:
            record = {
                "t": round(e.t, 3),
                "time": at_time(scenario, e.t).isoformat(),
                "device": e.device_id,
                "codec": codec_of[e.device_id],
                "topic": e.topic,
                "hex": e.payload.hex(),
                "tags": list(e.tags),
            }
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
    if args.truth is not None:
        with args.truth.open("w", encoding="utf-8") as f:
            f.writelines(r.to_json() + "\n" for r in out.truth)
    print(json.dumps({"emissions": len(out.emissions), "truth": len(out.truth)}))
    return 0


def _scenarios(_: argparse.Namespace) -> int:
    """One line per shipped scenario: file, simulated duration, devices, incidents, description."""
    paths = sorted(SHIPPED_SCENARIOS.glob("*.yaml"))
    width = max(len(_shown(path)) for path in paths)
    for path in paths:
        scenario = load_scenario(path)
        incidents = sum(1 for e in scenario.timeline if e.incident is not None)
        hours = scenario.duration / 3600
        span = f"{hours:g} h" if hours >= 1 else f"{scenario.duration / 60:g} min"
        devices = len(scenario.devices)
        print(
            f"{_shown(path):<{width}}  {span:>7} {devices:>3} device{'s'[: devices != 1]} "
            f"{incidents:>2} {'incident' + 's'[: incidents != 1]:<9}  {scenario.description}"
        )
    return 0


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it (as in a clone)."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _fleet(args: argparse.Namespace) -> int:
    from simulators.fleet import FleetConfig, run_fleet  # noqa: PLC0415

    with _broker(args.broker) as broker_url:
        result = run_fleet(
            FleetConfig(
                broker_url=broker_url,
                gateways=args.gateways,
                devices=args.devices,
                rate=args.rate,
                duration=args.duration,
                processes=args.processes,
                kind=args.kind,
                qos=args.qos,
            )
        )
    print(
        json.dumps(
            {"sent": result.sent, "seconds": round(result.seconds, 3), "rate": round(result.rate)}
        )
    )
    return 0


_TOOLS: dict[str, Callable[[argparse.Namespace], int]] = {
    "clock": _clock,
    "generate": _generate,
    "fleet": _fleet,
    "scenarios": _scenarios,
}
