"""`edge-agent decode` and `edge-agent codecs`: run any registered codec by hand.

    edge-agent decode --codec lorawan.milesight.em310_udl --fport 85 01755c03824408040001
    echo 01755c | edge-agent decode --codec lorawan.milesight.em310_udl -
    edge-agent decode --codec zigbee2mqtt.generic.exposes --model TS0203 - < states.jsonl
    edge-agent decode --codec lorawan.dragino.ldds75 --chirpstack - < up-events.jsonl
    edge-agent codecs

One JSON object per payload on stdout:
`{"codec": ID, "ok": true, "readings": [{"metric", "value", "device"}...], "attributes": {...}}`
(plus `"quality"` on a reading that is not good, and `"warnings"` when there are any), or
`{"codec": ID, "ok": false, "error": {"reason": ..., "detail": ...}}`. Exit 0 when every payload
decoded, 1 otherwise, 2 on usage errors (unknown codec, bad hex).

Sub-devices: a reading's `device` is the frame's device (`--device`, default `dev`; the DevEUI with
`--chirpstack`) or, where one frame reports several devices, `<frame device>/<sub-device>` as the
codec names it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from core.metrics import Quality
from core.types import DecodeResult, RawFrame
from edge_agent.commands import Subparsers
from firmware_adapters.chirpstack import frame_from_up_event, parse_up_event
from firmware_adapters.codec import Codec
from firmware_adapters.errors import DecodeError, UnknownCodecError
from firmware_adapters.registry import CODECS, get_codec
from firmware_adapters.zigbee2mqtt_exposes import (
    BridgeDevicesError,
    Z2mDevice,
    parse_bridge_devices,
)

USAGE_ERROR = 2


class UsageError(Exception):
    """A problem with the command line or its input, not with a payload."""


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def register(subparsers: Subparsers) -> None:
    """Add the `decode` and `codecs` subcommands."""
    decode = subparsers.add_parser(
        "decode",
        help="decode payloads with a codec and print one JSON object per payload",
        description="Decode payloads given as hex (or read from stdin with '-') with one codec.",
    )
    decode.add_argument("--codec", required=True, help="codec id, see `edge-agent codecs`")
    decode.add_argument("--fport", type=int, help="LoRaWAN fPort of the payloads")
    decode.add_argument("--device", default="dev", help="device id put on readings (default dev)")
    decode.add_argument("--model", help="Zigbee2MQTT model; payloads are state JSON documents")
    decode.add_argument(
        "--devices",
        type=Path,
        help="a saved zigbee2mqtt/bridge/devices document giving the exposes of --model",
    )
    decode.add_argument(
        "--availability",
        action="store_true",
        help="Zigbee2MQTT payloads are availability messages",
    )
    decode.add_argument(
        "--chirpstack",
        action="store_true",
        help="payloads are ChirpStack v4 `up` event JSON documents, one per line",
    )
    decode.add_argument("payloads", nargs="+", metavar="HEX", help="hex payloads, or - for stdin")
    decode.set_defaults(handler=run_decode)
    codecs = subparsers.add_parser("codecs", help="list every registered codec")
    codecs.add_argument("--json", action="store_true", help="one JSON object per codec")
    codecs.set_defaults(handler=run_codecs)


def run_codecs(args: argparse.Namespace) -> int:
    """Print every codec with its transport and device class."""
    for codec in sorted(CODECS.values(), key=lambda c: c.id):
        if args.json:
            row = {
                "codec": codec.id,
                "transport": codec.transport,
                "device_class": codec.device_class.value,
                "description": codec.description,
            }
            _out(json.dumps(row, ensure_ascii=False))
        else:
            _out(
                f"{codec.id:<36} {codec.transport:<12} {codec.device_class.value:<12} {codec.description}"
            )
    return 0


def _texts(args: argparse.Namespace) -> Iterator[str]:
    for item in args.payloads:
        if item == "-":
            for line in sys.stdin:
                if line.strip():
                    yield line.strip()
        else:
            yield item


def _is_json_input(args: argparse.Namespace, codec: Codec) -> bool:
    return bool(
        args.chirpstack or args.model or args.availability or codec.transport == "zigbee2mqtt"
    )


def _z2m_meta(args: argparse.Namespace) -> dict[str, str]:
    meta = {"kind": "availability" if args.availability else "state"}
    if args.model:
        meta["model"] = args.model
    if args.devices:
        try:
            index = parse_bridge_devices(args.devices.read_bytes())
        except (OSError, BridgeDevicesError) as err:
            raise UsageError(f"--devices: {err}") from err
        device: Z2mDevice | None = next((d for d in index.values() if d.model == args.model), None)
        if device is None:
            raise UsageError(f"--devices has no device of model {args.model!r}")
        meta["exposes"] = device.exposes_meta
    return meta


def _frame(args: argparse.Namespace, codec: Codec, text: str, extra: Mapping[str, str]) -> RawFrame:
    now = datetime.now(UTC)
    if args.chirpstack:
        event = parse_up_event(text)
        return frame_from_up_event(event, codec.id, event.time or now, source_id="cli")
    if _is_json_input(args, codec):
        payload = text.encode()
    else:
        try:
            payload = bytes.fromhex(text)
        except ValueError:
            raise UsageError(f"not hex: {text[:60]!r}") from None
    meta = {"device_id": args.device, **extra}
    if args.fport is not None:
        meta["fport"] = str(args.fport)
    return RawFrame("cli", codec.id, payload, now, meta)


def result_json(codec_id: str, result: DecodeResult) -> dict[str, object]:
    """The output object of a decoded payload."""
    readings: list[dict[str, object]] = []
    for r in result.readings:
        row: dict[str, object] = {"metric": r.metric.value, "value": r.value, "device": r.device_id}
        if r.quality is not Quality.GOOD:
            row["quality"] = r.quality.value
        readings.append(row)
    out: dict[str, object] = {
        "codec": codec_id,
        "ok": True,
        "readings": readings,
        "attributes": dict(result.attributes),
    }
    if result.warnings:
        out["warnings"] = list(result.warnings)
    return out


def error_json(codec_id: str, err: DecodeError) -> dict[str, object]:
    """The output object of a payload that failed to decode."""
    return {
        "codec": codec_id,
        "ok": False,
        "error": {"reason": err.reason.value, "detail": err.detail},
    }


def run_decode(args: argparse.Namespace) -> int:
    """Decode every payload and print the results; see the module docstring for exit codes."""
    try:
        codec = get_codec(args.codec)
        extra = _z2m_meta(args) if codec.transport == "zigbee2mqtt" else {}
        if codec.transport != "zigbee2mqtt" and not args.chirpstack:
            for item in args.payloads:  # reject bad hex before decoding anything
                if item != "-":
                    _check_hex(item)
    except (UnknownCodecError, UsageError) as err:
        _err(f"edge-agent decode: {err.args[0] if err.args else err}")
        return USAGE_ERROR
    status = 0
    for text in _texts(args):
        try:
            frame = _frame(args, codec, text, extra)
            out = result_json(codec.id, codec.decode(frame))
        except UsageError as err:
            _err(f"edge-agent decode: {err}")
            status = USAGE_ERROR
            continue
        except DecodeError as err:
            out = error_json(codec.id, err)
            status = status or 1
        _out(json.dumps(out, ensure_ascii=False))
    return status


def _check_hex(text: str) -> None:
    try:
        bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"not hex: {text[:60]!r}") from None
