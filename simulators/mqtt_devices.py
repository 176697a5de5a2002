"""MQTT-side devices: a publisher that can lose its broker, and the Zigbee2MQTT bridge's own topics.

ChirpStack `up` events and Zigbee2MQTT device states are built offline (`simulators.encoding`); this
module puts them on a broker with aiomqtt, and publishes what a Zigbee2MQTT bridge publishes besides
states: retained `bridge/state`, retained `bridge/devices` (with each model's exposes) and retained
per-device `availability`.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiomqtt

from simulators.encoding import stable_hex
from simulators.exposes import exposes_for, model_of, models
from simulators.scenario import Device

log = logging.getLogger(__name__)


def parse_broker_url(url: str) -> tuple[str, int]:
    """`mqtt://host:port` -> (host, port); port 1883 by default."""
    parsed = urllib.parse.urlsplit(url if "://" in url else f"mqtt://{url}")
    if parsed.scheme not in {"mqtt", "tcp"}:
        raise ValueError(f"broker URL {url!r}: only mqtt:// is supported")
    return parsed.hostname or "127.0.0.1", parsed.port or 1883


class MqttPublisher:
    """One MQTT connection that publishes; `disconnect()`/`connect()` simulate a lost broker."""

    def __init__(self, url: str, client_id: str = "") -> None:
        """Prepare a connection to `url` (`mqtt://host:port`)."""
        self.host, self.port = parse_broker_url(url)
        self.client_id = client_id or None
        self._client: aiomqtt.Client | None = None
        self.published = 0
        self.lost = 0

    @property
    def connected(self) -> bool:
        """Whether the connection is up."""
        return self._client is not None

    async def connect(self) -> None:
        """Open the connection (no-op when open)."""
        if self._client is None:
            client = aiomqtt.Client(self.host, self.port, identifier=self.client_id)
            await client.__aenter__()
            self._client = client

    async def disconnect(self) -> None:
        """Close the connection (no-op when closed)."""
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(None, None, None)

    async def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False
    ) -> bool:
        """Publish; returns False (and counts it) while disconnected or when the broker is gone."""
        if self._client is None:
            self.lost += 1
            return False
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as err:
            log.warning("publish to %s failed: %s", topic, err)
            self.lost += 1
            self._client = None
            return False
        self.published += 1
        return True

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()


@dataclass(frozen=True, slots=True)
class ZigbeeDevice:
    """A device as the Zigbee2MQTT bridge lists it."""

    friendly_name: str
    ieee_address: str
    model: str
    vendor: str
    description: str
    exposes: Sequence[Mapping[str, object]]

    @classmethod
    def from_device(cls, device: Device) -> ZigbeeDevice:
        """Describe a scenario device by its model (`address.model`, else the kind's default)."""
        model = model_of(device.kind, _opt(device.address.get("model")))
        entry = models()[model]
        return cls(
            friendly_name=str(device.address.get("friendly_name", device.id)),
            ieee_address=str(device.address.get("ieee_address", "0x" + stable_hex(device.id, 16))),
            model=model,
            vendor=str(entry.get("vendor", "")),
            description=str(entry.get("description", "")),
            exposes=exposes_for(model),
        )

    def bridge_entry(self) -> dict[str, object]:
        """The device's item in `bridge/devices` (Zigbee2MQTT 2.x shape)."""
        return {
            "ieee_address": self.ieee_address,
            "type": "EndDevice",
            "network_address": int(self.ieee_address[-4:], 16),
            "supported": True,
            "friendly_name": self.friendly_name,
            "disabled": False,
            "description": "",
            "definition": {
                "source": "native",
                "model": self.model,
                "vendor": self.vendor,
                "description": self.description,
                "exposes": list(self.exposes),
                "supports_ota": False,
                "options": [],
            },
            "power_source": "Battery",
            "model_id": self.model,
            "manufacturer": self.vendor,
            "interviewing": False,
            "interview_completed": True,
            "interview_state": "SUCCESSFUL",
            "endpoints": {"1": {"bindings": [], "configured_reportings": [], "clusters": {}}},
        }


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


COORDINATOR = {
    "ieee_address": "0x00124b0000000000",
    "type": "Coordinator",
    "network_address": 0,
    "supported": True,
    "friendly_name": "Coordinator",
    "disabled": False,
    "definition": None,
    "interview_completed": True,
    "interviewing": False,
}


async def announce_zigbee_bridge(
    publisher: MqttPublisher,
    devices: Sequence[ZigbeeDevice],
    *,
    base_topic: str = "zigbee2mqtt",
    online: bool = True,
) -> None:
    """Publish the retained bridge state, device list and every device's availability."""
    state = json.dumps({"state": "online" if online else "offline"})
    await publisher.publish(f"{base_topic}/bridge/state", state, qos=1, retain=True)
    listing = [COORDINATOR, *(d.bridge_entry() for d in devices)]
    await publisher.publish(f"{base_topic}/bridge/devices", json.dumps(listing), qos=1, retain=True)
    for d in devices:
        await publisher.publish(
            f"{base_topic}/{d.friendly_name}/availability", state, qos=1, retain=True
        )
