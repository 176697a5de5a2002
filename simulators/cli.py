"""`propsim`: run scenarios, single virtual devices, a load generator, or generate data offline."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import aiomqtt

from core.clock import clock_spec
from simulators.scenario import Scenario, ScenarioError, load_scenario
from simulators.single_devices import mqtt_devices, serial_device

log = logging.getLogger("propsim")


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
    run.add_argument("--broker", default=None, help="mqtt://host:port for MQTT devices")
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
    serial.add_argument("--slave-id", type=int, default=1, help="Modbus slave id")
    serial.add_argument("--timeout", type=float, default=10.0, help="GB/T confirm timeout, s")
    serial.add_argument("--unplug-at", type=float, default=None, help="pull the cable at this s")
    serial.add_argument("--unplug-for", type=float, default=10.0, help="and plug it in after, s")
    _common_run(serial)

    mqtt = sub.add_parser("mqtt", help="Zigbee2MQTT or ChirpStack devices on a broker")
    mqtt.add_argument("kind", choices=["zigbee2mqtt", "chirpstack"])
    mqtt.add_argument("--broker", required=True)
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
    fleet.add_argument("--broker", required=True)
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
    return parser


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
        return int(_dispatch(args))
    except ScenarioError as err:
        print(err, file=sys.stderr)
        return 2
    except (ValueError, KeyError) as err:  # a bad option or a scenario the transports cannot play
        print(f"propsim: {err}", file=sys.stderr)
        return 2
    except (OSError, aiomqtt.MqttError) as err:  # the broker, a receiver or a pty is not there
        print(f"propsim: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


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


def _play(
    scenario: Scenario,
    args: argparse.Namespace,
    broker: str | None,
    serial_dir: Path = Path("/tmp/steward-sim"),  # noqa: S108 - the documented default
) -> int:
    from simulators.runner import RunOptions, ScenarioRunner  # noqa: PLC0415 - loads aiomqtt lazily

    options = RunOptions(
        seed=args.seed,
        speed=args.speed,
        broker_url=broker,
        serial_dir=serial_dir,
        duration=args.duration,
        gbt_timeout_s=getattr(args, "timeout", 10.0),
        receiver=getattr(args, "receiver", None),
        origin=getattr(args, "origin", None),
    )
    runner = ScenarioRunner(scenario, options)
    truth = args.truth.open("w", encoding="utf-8") if args.truth else None
    try:
        stats = asyncio.run(runner.run(truth))
    finally:
        if truth is not None:
            truth.close()
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


def _fleet(args: argparse.Namespace) -> int:
    from simulators.fleet import FleetConfig, run_fleet  # noqa: PLC0415

    result = run_fleet(
        FleetConfig(
            broker_url=args.broker,
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
}
