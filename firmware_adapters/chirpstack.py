"""ChirpStack v4 MQTT integration: parse `up` events into frames, and build them for simulators.

Topic `application/{application_id}/device/{dev_eui}/event/up`; the payload is the protobuf-JSON of
`integration.UplinkEvent` (camelCase keys, bytes as base64, 64-bit ints possibly strings). The
`devEui` is inside `deviceInfo` (v4), not at the top level (v3). Since ChirpStack `8d0c4bf6` the
top-level scalars are always present, but the nested rxInfo/txInfo messages omit zero values and older
servers omit `fCnt`/`adr`: missing ints are 0 and missing bools false.

`frame_from_up_event` makes the `RawFrame` a LoRaWAN codec decodes: the payload is the decoded `data`,
and `meta` carries `fport`, `f_cnt`, `dev_eui`, `application_id`, `device_name`, `gateway_id`,
`rssi`/`snr` (of the gateway that heard the frame best), `dr`, `frequency` and `time`. Codecs turn
`rssi`/`snr` into `rssi_dbm`/`snr_db` readings (`firmware_adapters.lorawan.radio_readings`).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from uuid import UUID

import orjson

from core.types import RawFrame
from firmware_adapters.errors import DecodeError, DecodeReason, internal_error

_DEV_EUI: Final = re.compile(r"[0-9a-f]{16}")
PARSER_ID: Final = "lorawan.chirpstack.up"
"""The codec id named in errors raised while parsing the event itself (before any device codec)."""


@dataclass(frozen=True, slots=True)
class RxInfo:
    """One gateway's reception of the uplink."""

    gateway_id: str
    rssi: int
    snr: float


@dataclass(frozen=True, slots=True)
class UplinkEvent:
    """The parts of a ChirpStack v4 `up` event that Steward uses."""

    dev_eui: str
    application_id: str
    device_name: str
    f_port: int
    f_cnt: int
    data: bytes
    time: datetime | None = None
    dr: int = 0
    adr: bool = False
    confirmed: bool = False
    frequency: int = 0
    deduplication_id: str = ""
    rx: tuple[RxInfo, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def best_rx(self) -> RxInfo | None:
        """The reception with the strongest signal, if any gateway reported one."""
        return max(self.rx, key=lambda r: (r.rssi, r.snr), default=None)


def _fail(detail: str, raw: bytes) -> DecodeError:
    return DecodeError(PARSER_ID, DecodeReason.MALFORMED, detail, raw)


def _int(doc: Mapping[str, object], key: str, raw: bytes) -> int:
    value = doc.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(f"{key} must be an integer, got {value!r}", raw)
    try:
        return int(value)  # protobuf JSON may write 64-bit ints as strings
    except ValueError:
        raise _fail(f"{key} must be an integer, got {value!r}", raw) from None


def _float(doc: Mapping[str, object], key: str, raw: bytes) -> float:
    value = doc.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"{key} must be a number, got {value!r}", raw)
    return float(value)


def _str(doc: Mapping[str, object], key: str, raw: bytes) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise _fail(f"{key} must be a string, got {value!r}", raw)
    return value


def _obj(doc: Mapping[str, object], key: str, raw: bytes) -> Mapping[str, object]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise _fail(f"{key} must be an object", raw)
    return value


def _time(text: str, raw: bytes) -> datetime | None:
    if not text:
        return None
    # RFC 3339 with nanoseconds: Python keeps microseconds, so cut the fraction to six digits.
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        stamp = datetime.fromisoformat(text)  # 3.11 accepts "Z"
    except ValueError:
        raise _fail(f"time {text!r} is not RFC 3339", raw) from None
    if stamp.tzinfo is None:
        raise _fail(f"time {text!r} has no offset", raw)
    try:
        return stamp.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-01:00 is past the last datetime once in UTC
        raise _fail(f"time {text!r} is out of range in UTC", raw) from None


def parse_up_event(payload: bytes | str) -> UplinkEvent:
    """Parse one `up` event JSON; any defect is a `DecodeError` (reason `malformed`).

    Nothing else escapes: an exception the checks did not foresee becomes a `codec_error`.
    """
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    try:
        return _parse(raw)
    except DecodeError:
        raise
    except Exception as err:
        raise internal_error(PARSER_ID, err, raw) from err


def _parse(raw: bytes) -> UplinkEvent:
    try:
        doc = orjson.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(f"not JSON: {err}", raw) from None
    if not isinstance(doc, dict):
        raise _fail("event must be a JSON object", raw)
    info = _obj(doc, "deviceInfo", raw)
    dev_eui = _str(info, "devEui", raw).lower()
    if _DEV_EUI.fullmatch(dev_eui) is None:
        raise _fail(f"deviceInfo.devEui {dev_eui!r} is not 16 hex digits", raw)
    text = _str(doc, "data", raw)
    if not text.isascii():  # b64decode raises a bare ValueError for these, not binascii.Error
        raise _fail("data is not base64: non-ASCII characters", raw)
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as err:
        raise _fail(f"data is not base64: {err}", raw) from None
    rx_list = doc.get("rxInfo", [])
    if not isinstance(rx_list, list) or not all(isinstance(r, dict) for r in rx_list):
        raise _fail("rxInfo must be a list of objects", raw)
    tags = _obj(info, "tags", raw)
    return UplinkEvent(
        dev_eui=dev_eui,
        application_id=_str(info, "applicationId", raw),
        device_name=_str(info, "deviceName", raw),
        f_port=_int(doc, "fPort", raw),
        f_cnt=_int(doc, "fCnt", raw),
        data=data,
        time=_time(_str(doc, "time", raw), raw),
        dr=_int(doc, "dr", raw),
        adr=bool(doc.get("adr", False)),
        confirmed=bool(doc.get("confirmed", False)),
        frequency=_int(_obj(doc, "txInfo", raw), "frequency", raw),
        deduplication_id=_str(doc, "deduplicationId", raw),
        rx=tuple(
            RxInfo(_str(r, "gatewayId", raw), _int(r, "rssi", raw), _float(r, "snr", raw))
            for r in rx_list
        ),
        tags={str(k): str(v) for k, v in tags.items()},
    )


def frame_from_up_event(
    event: UplinkEvent,
    codec_id: str,
    received_at: datetime,
    device_id: str | None = None,
    source_id: str = "chirpstack",
) -> RawFrame:
    """Make the frame a LoRaWAN codec decodes from a parsed event.

    Args:
        event: the parsed `up` event.
        codec_id: the codec the device is bound to (configuration).
        received_at: when the gateway received it; pass `event.time` when present, else the clock.
        device_id: Steward's id of the device; defaults to the DevEUI.
        source_id: the source that delivered the event.
    """
    meta = {
        "device_id": device_id or event.dev_eui,
        "dev_eui": event.dev_eui,
        "fport": str(event.f_port),
        "f_cnt": str(event.f_cnt),
        "application_id": event.application_id,
        "device_name": event.device_name,
        "dr": str(event.dr),
    }
    if event.frequency:
        meta["frequency"] = str(event.frequency)
    if event.time is not None:
        meta["time"] = event.time.isoformat()
    best = event.best_rx
    if best is not None:
        meta |= {"gateway_id": best.gateway_id, "rssi": str(best.rssi), "snr": str(best.snr)}
    return RawFrame(source_id, codec_id, event.data, received_at, meta)


def up_topic(application_id: str, dev_eui: str) -> str:
    """The MQTT topic ChirpStack publishes a device's `up` events on."""
    return f"application/{application_id}/device/{dev_eui.lower()}/event/up"


@dataclass
class UpEventEncoder:
    """Builds the `up` events of one simulated device: base64 data, increasing fCnt, plausible radio.

    `rng` makes the radio values reproducible (seed it in tests).
    """

    dev_eui: str
    application_id: str = "17c82e96-be03-4f38-aef3-f83d48582d97"
    device_name: str = ""
    gateway_id: str = "0016c001f153a14c"
    f_cnt: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311 - simulation

    @property
    def topic(self) -> str:
        """The topic to publish on."""
        return up_topic(self.application_id, self.dev_eui)

    def encode(self, data: bytes, f_port: int, time: datetime) -> bytes:
        """Return the JSON of the next `up` event carrying `data` on `f_port` (fCnt then grows)."""
        rssi = self.rng.randint(-120, -40)
        snr = round(self.rng.uniform(-15.0, 12.0), 2)
        doc = {
            "deduplicationId": str(UUID(int=self.rng.getrandbits(128), version=4)),
            "time": time.astimezone(UTC).isoformat(),
            "deviceInfo": {
                "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
                "tenantName": "ChirpStack",
                "applicationId": self.application_id,
                "applicationName": "steward",
                "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
                "deviceProfileName": "steward-sim",
                "deviceName": self.device_name or self.dev_eui,
                "devEui": self.dev_eui.lower(),
                "deviceClassEnabled": "CLASS_A",
                "tags": {},
            },
            "devAddr": self.dev_eui[-8:].lower(),
            "adr": True,
            "dr": 5,
            "fCnt": self.f_cnt,
            "fPort": f_port,
            "confirmed": False,
            "data": base64.b64encode(data).decode(),
            "rxInfo": [
                {
                    "gatewayId": self.gateway_id,
                    "uplinkId": self.rng.randint(1, 2**32 - 1),
                    "rssi": rssi,
                    "snr": snr,
                    "context": "AAAAAA==",
                    "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
                    "crcStatus": "CRC_OK",
                }
            ],
            "txInfo": {
                "frequency": self.rng.choice((867100000, 867300000, 867500000, 868100000)),
                "modulation": {
                    "lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}
                },
            },
            "regionConfigId": "eu868",
        }
        self.f_cnt = (self.f_cnt + 1) & 0xFFFFFFFF
        return json.dumps(doc, separators=(",", ":")).encode()
