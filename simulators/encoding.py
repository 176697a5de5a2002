"""Turn a device's samples into the exact bytes it sends, through the real codec encoders.

Every payload comes from `firmware_adapters.registry.CODECS[codec_id].encode(values)`; this module
only chooses the values (canonical metric names, plus the few protocol fields a format needs) and
wraps payloads the way the transport does (a ChirpStack v4 `up` event, a Zigbee2MQTT state topic).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np

from firmware_adapters.codec import Codec
from firmware_adapters.errors import EncodeError
from firmware_adapters.registry import get_codec
from simulators.emission import Emission, Sample, Value
from simulators.exposes import model_of, state_values
from simulators.scenario import Device, Scenario
from simulators.value_maps import encoder_values

log = logging.getLogger(__name__)

LORAWAN_FPORT = {"milesight": 85, "dragino": 2, "dingtek": 3}
"""Uplink fPort by vendor (DEVICE_PROTOCOLS.md §2)."""
MODEL_FPORT = {"lorawan.dragino.lds02": 10}
"""Models whose uplink port differs from their vendor's usual one."""

CONTACT_ID_EVENTS: tuple[tuple[str, int], ...] = (
    ("fire_alarm", 110),
    ("smoke", 111),
    ("contact_open", 131),
    ("intrusion", 130),
    ("tamper", 137),
    ("low_battery", 302),
)
"""Contact ID event code a panel reports when a canonical flag rises (qualifier 1) or falls (3)."""
PERIODIC_TEST = 602
"""The event a panel sends at its reporting interval when nothing changed (zone 000)."""


def stable_hex(text: str, length: int) -> str:
    """A stable pseudo-random lowercase hex string derived from `text` (device EUIs, IEEE addresses)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class DeviceEncoder:
    """Encodes one device's samples into emissions; holds the per-device counters (fCnt, serial)."""

    def __init__(self, scenario: Scenario, device: Device, rng: np.random.Generator) -> None:
        """Bind a device of a scenario; `rng` draws radio conditions and ids."""
        self.scenario = scenario
        self.device = device
        self.codec: Codec = get_codec(device.codec)
        self.rng = rng
        self.counter = int(device.address.get("fcnt", 0))
        self._flags: dict[str, bool] = {}
        self.encode_errors = 0

    def at(self, t: float) -> datetime:
        """Wall-clock time of simulated second `t`."""
        return self.scenario.start.astimezone(UTC) + timedelta(seconds=t)

    def encode(self, sample: Sample) -> list[Emission]:
        """The emissions one sample produces (panels send only on change, so possibly none).

        Values the format cannot carry are counted in `encode_errors` and the sample is skipped,
        as a device whose firmware refuses a reading would skip it.
        """
        try:
            return self._encode(sample)
        except EncodeError as err:
            self.encode_errors += 1
            log.debug("%s: cannot encode %s: %s", self.device.id, dict(sample.values), err)
            return []

    def _encode(self, sample: Sample) -> list[Emission]:
        transport = self.device.transport
        if transport == "lorawan":
            return [self._chirpstack_up(sample)]
        if transport == "zigbee2mqtt":
            return [self._zigbee_state(sample)]
        if self.device.codec.startswith("serial.gbt26875"):
            return [self._raw(sample, self._gbt_values(sample))]
        if transport in {"serial", "ip"} and _is_contact_id(self.device.codec):
            return [self._raw(sample, v) for v in self._contact_id_values(sample)]
        values = encoder_values(self.device.codec, sample.values)
        if transport == "modbus" and "slave_id" in self.device.address:
            values["slave"] = int(self.device.address["slave_id"])
        return [self._raw(sample, values)]

    # --- transports ---------------------------------------------------------------------------

    def _raw(self, sample: Sample, values: Mapping[str, object]) -> Emission:
        return Emission(sample.t, self.device.id, self.codec.encode(values))

    def _chirpstack_up(self, sample: Sample) -> Emission:
        d = self.device
        dev_eui = str(d.address.get("dev_eui", stable_hex(d.id, 16)))
        app_id = str(d.address.get("application_id", uuid.UUID(stable_hex(self.scenario.name, 32))))
        vendor = d.codec.split(".")[1]
        default_port = MODEL_FPORT.get(d.codec, LORAWAN_FPORT.get(vendor, 1))
        fport = int(d.address.get("fport", default_port))
        payload = self.codec.encode(encoder_values(d.codec, sample.values))
        fcnt = self.counter
        self.counter += 1
        event = chirpstack_up_event(
            time=self.at(sample.t),
            dev_eui=dev_eui,
            application_id=app_id,
            device_name=d.id,
            profile_name=d.codec,
            fcnt=fcnt,
            fport=fport,
            data=payload,
            rng=self.rng,
            tags={"location": str(self.scenario.location(d))},
        )
        topic = f"application/{app_id}/device/{dev_eui}/event/up"
        body = json.dumps(event, separators=(",", ":")).encode()
        return Emission(sample.t, d.id, body, topic=topic, meta={"fport": str(fport)})

    def _zigbee_state(self, sample: Sample) -> Emission:
        d = self.device
        name = str(d.address.get("friendly_name", d.id))
        base = str(d.address.get("base_topic", "zigbee2mqtt"))
        model_name = d.address.get("model")
        model = model_of(d.kind, None if model_name is None else str(model_name))
        values = state_values(model, encoder_values(d.codec, sample.values))
        values["linkquality"] = int(self.rng.integers(40, 255))
        payload = self.codec.encode(values)
        return Emission(sample.t, d.id, payload, topic=f"{base}/{name}", meta={"model": model})

    # --- serial formats ----------------------------------------------------------------------

    def _gbt_values(self, sample: Sample) -> dict[str, object]:
        serial = self.counter % 65_536
        self.counter += 1
        when = self.at(sample.clock)
        v = sample.values
        obj: dict[str, object] = {
            "system_type": 1,
            "system_address": int(self.device.address.get("system_address", 1)),
            "component_type": int(self.device.address.get("component_type", 42)),
            "component_address": int(self.device.address.get("component_address", 1)),
            "fire_alarm": bool(v.get("fire_alarm", v.get("smoke", False))),
            "fault": bool(v.get("fault", False)),
            "power_fault": bool(v.get("low_battery", False)),
            "self_test": False,
            "at": when,
        }
        return {
            "serial": serial,
            "command": 2,
            "sent_at": when,
            "source": int(self.device.address.get("source", 1)),
            "destination": int(self.device.address.get("destination", 0)),
            "info_type": 2,
            "objects": [obj],
        }

    def _contact_id_values(self, sample: Sample) -> list[dict[str, object]]:
        """The events of a report: each flag that changed, or else the panel's periodic test."""
        out: list[dict[str, object]] = []
        for flag, code in CONTACT_ID_EVENTS:
            if flag not in sample.values:
                continue
            now = bool(sample.values[flag])
            before = self._flags.get(flag, False)
            self._flags[flag] = now
            if now == before:
                continue
            zone = int(self.device.address.get("zone", 1))
            out.append(self._contact_id_event(sample, code, 1 if now else 3, zone))
        if not out:  # nothing happened since the last report: the panel proves it is alive
            out.append(self._contact_id_event(sample, PERIODIC_TEST, 1, 0))
        return out

    def _contact_id_event(
        self, sample: Sample, code: int, qualifier: int, zone: int
    ) -> dict[str, object]:
        return {
            "account": str(self.device.address.get("account", "1234")),
            "qualifier": qualifier,
            "event_code": code,
            "partition": int(self.device.address.get("partition", 1)),
            "zone": zone,
            "sent_at": self.at(sample.clock),
            "at": self.at(sample.clock),
            "id": "ADM-CID",
            "sequence": self._next_sequence(),
        }

    def _next_sequence(self) -> int:
        self.counter = (self.counter % 9999) + 1
        return self.counter


def _is_contact_id(codec_id: str) -> bool:
    return "contact_id" in codec_id or "dc09" in codec_id or "sia" in codec_id


def chirpstack_up_event(
    *,
    time: datetime,
    dev_eui: str,
    application_id: str,
    device_name: str,
    profile_name: str,
    fcnt: int,
    fport: int,
    data: bytes,
    rng: np.random.Generator,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Value | dict[str, object] | list[dict[str, object]]]:
    """A ChirpStack v4 `up` event (protobuf JSON, camelCase) with plausible radio metadata."""
    sf = int(rng.integers(7, 13))
    rssi = int(rng.integers(-118, -60))
    snr = round(float(rng.uniform(-12, 10)) * 4) / 4
    gateway = str(rng.integers(0, 2**32)).zfill(10)
    dedup = uuid.UUID(bytes=rng.integers(0, 256, 16, dtype=np.uint8).tobytes(), version=4)
    ns_time = time - timedelta(milliseconds=int(rng.integers(5, 40)))
    return {
        "deduplicationId": str(dedup),
        "time": time.astimezone(UTC).isoformat(timespec="microseconds"),
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": application_id,
            "applicationName": "steward-sim",
            "deviceProfileId": str(uuid.UUID(stable_hex(profile_name, 32))),
            "deviceProfileName": profile_name,
            "deviceName": device_name,
            "devEui": dev_eui,
            "deviceClassEnabled": "CLASS_A",
            "tags": dict(tags or {}),
        },
        "devAddr": stable_hex(dev_eui, 8),
        "adr": True,
        "dr": 12 - sf,
        "fCnt": fcnt,
        "fPort": fport,
        "confirmed": False,
        "data": base64.b64encode(data).decode(),
        "rxInfo": [
            {
                "gatewayId": f"0016c001{int(gateway) % 2**32:08x}",
                "uplinkId": int(rng.integers(1, 2**16)),
                "nsTime": ns_time.astimezone(UTC).isoformat(timespec="milliseconds"),
                "rssi": rssi,
                "snr": snr,
                "channel": int(rng.integers(0, 8)),
                "context": base64.b64encode(
                    rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
                ).decode(),
                "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
                "crcStatus": "CRC_OK",
            }
        ],
        "txInfo": {
            "frequency": int(rng.choice([867_100_000, 867_300_000, 867_500_000, 868_100_000])),
            "modulation": {
                "lora": {"bandwidth": 125_000, "spreadingFactor": sf, "codeRate": "CR_4_5"}
            },
        },
        "regionConfigId": "eu868",
    }
