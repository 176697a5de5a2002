"""The local MQTT broker as a source: Zigbee2MQTT device state and ChirpStack v4 `up` events.

aiomqtt reconnect loop (docs/reconnection.md) with jittered backoff. A persistent session with QoS 1
subscriptions keeps messages that arrive while the agent restarts; the retained
`zigbee2mqtt/bridge/devices` arrives on every (re)subscribe and refreshes the model index, and the
retained `<name>/availability` topics become fault readings of the bound devices. ChirpStack events
are bound to devices by DevEUI; events of unbound DevEUIs are counted and skipped. The source only
moves bytes: the firmware_adapters helpers turn a message into a RawFrame, the codec decodes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from datetime import datetime
from typing import Any

import aiomqtt

from core.types import RawFrame
from edge_agent.bindings import BindingsHolder
from edge_agent.config import LocalMqttConfig
from edge_agent.sources.base import Backoff, SourceContext

_LOG = logging.getLogger(__name__)


class MqttSource:
    """Subscribes to Zigbee2MQTT and ChirpStack topics on the local broker."""

    def __init__(
        self,
        *,
        name: str,
        broker: LocalMqttConfig,
        bindings: BindingsHolder,
        ctx: SourceContext,
        client_id: str,
        backoff: Backoff | None = None,
    ) -> None:
        """Prepare the source; nothing connects until `run()`."""
        self.name = name
        self.broker = broker
        self.bindings = bindings
        self.ctx = ctx
        self.client_id = client_id
        self.backoff = backoff or Backoff(first=0.2, maximum=30.0)
        self.z2m_base = broker.zigbee2mqtt.base_topic if broker.zigbee2mqtt else None
        self.chirpstack_app = broker.chirpstack.application_id if broker.chirpstack else None
        self.models: dict[str, dict[str, Any]] = {}
        """Zigbee2MQTT bridge/devices entries by friendly name."""
        self.skipped: Counter[str] = Counter()
        self.connected = False
        self.connections = 0

    def topics(self) -> list[str]:
        """The subscriptions of this source."""
        out = []
        if self.z2m_base is not None:
            out.append(f"{self.z2m_base}/#")
        if self.chirpstack_app is not None:
            out.append(f"application/{self.chirpstack_app}/device/+/event/up")
        return out

    async def run(self) -> None:
        """Connect, subscribe, move messages; reconnect with backoff, until cancelled."""
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=self.client_id,
                    clean_session=False,
                    keepalive=self.broker.keepalive_s,
                ) as client:
                    for topic in self.topics():
                        await client.subscribe(topic, qos=1)
                    self.connected = True
                    self.connections += 1
                    self.backoff.reset()
                    _LOG.info(
                        "mqtt %s: connected to %s:%s", self.name, self.broker.host, self.broker.port
                    )
                    async for message in client.messages:
                        await self.handle(str(message.topic), _payload(message.payload))
            except aiomqtt.MqttError as err:
                _LOG.warning("mqtt %s: %s", self.name, err)
            finally:
                self.connected = False
            await asyncio.sleep(self.backoff.next_delay())

    async def handle(self, topic: str, payload: bytes) -> None:
        """Route one message (public so tests can inject messages at the source boundary)."""
        now = self.ctx.clock.now()
        if self.z2m_base is not None and topic.startswith(self.z2m_base + "/"):
            await self._zigbee(topic[len(self.z2m_base) + 1 :], payload, now)
        elif self.chirpstack_app is not None and topic.startswith("application/"):
            await self._chirpstack(topic, payload, now)

    # --- Zigbee2MQTT -----------------------------------------------------------------------------

    async def _zigbee(self, rest: str, payload: bytes, now: datetime) -> None:
        if rest == "bridge/devices":
            self._index_devices(payload)
            return
        if rest.startswith("bridge/"):
            return
        if rest.endswith("/availability"):
            await self._availability(rest.removesuffix("/availability"), payload)
            return
        if rest.endswith(("/set", "/get")) or not payload:
            return
        device = self.bindings.current.by_friendly_name.get(rest)
        if device is None:
            self.skipped["zigbee_unbound"] += 1
            return
        meta = {"device_id": device.id, "friendly_name": rest, "topic": f"{self.z2m_base}/{rest}"}
        entry = self.models.get(rest)
        if entry is not None:
            definition = entry.get("definition") or {}
            meta["model"] = str(definition.get("model", ""))
            meta["vendor"] = str(definition.get("vendor", ""))
            meta["ieee_address"] = str(entry.get("ieee_address", ""))
        await self.ctx.submit(RawFrame(self.name, device.codec, payload, now, meta))

    def _index_devices(self, payload: bytes) -> None:
        try:
            devices = json.loads(payload or b"[]")
        except ValueError:
            self.skipped["zigbee_bad_bridge_devices"] += 1
            return
        if not isinstance(devices, list):
            self.skipped["zigbee_bad_bridge_devices"] += 1
            return
        self.models = {
            str(d["friendly_name"]): d
            for d in devices
            if isinstance(d, dict) and "friendly_name" in d
        }

    async def _availability(self, name: str, payload: bytes) -> None:
        device = self.bindings.current.by_friendly_name.get(name)
        if device is None or not payload:
            return
        text = payload.decode("utf-8", "replace").strip()
        try:
            doc = json.loads(text)
            state = str(doc.get("state", "")) if isinstance(doc, dict) else str(doc)
        except ValueError:
            state = text  # Zigbee2MQTT 1.x legacy payload: plain online / offline
        if state in {"online", "offline"}:
            await self.ctx.fault(device.id, state == "offline")

    # --- ChirpStack --------------------------------------------------------------------------------

    async def _chirpstack(self, topic: str, payload: bytes, now: datetime) -> None:
        parts = topic.split("/")
        # Topic shape: application, app id, "device", DevEUI, "event", "up".
        if len(parts) != 6 or parts[2] != "device" or parts[4:] != ["event", "up"]:  # noqa: PLR2004
            return
        device = self.bindings.current.by_dev_eui.get(parts[3].lower())
        if device is None:
            self.skipped["lorawan_unbound"] += 1
            return
        meta = {"device_id": device.id, "dev_eui": parts[3].lower(), "topic": topic}
        await self.ctx.submit(RawFrame(self.name, device.codec, payload, now, meta))


def _payload(raw: object) -> bytes:
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    if raw is None:
        return b""
    return str(raw).encode()
