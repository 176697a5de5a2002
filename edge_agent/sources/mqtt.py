"""The local MQTT broker as a source: Zigbee2MQTT device state and ChirpStack v4 `up` events.

Messages come in batches from `MqttIntake` (paho-mqtt on the event loop, reading the socket in large
chunks), with a reconnect loop and jittered backoff. A persistent session with QoS 1 subscriptions
keeps messages that arrive while the agent restarts; the retained
`zigbee2mqtt/bridge/devices` arrives on every (re)subscribe and refreshes the model index (models and
exposes ride along in the frames), and `<name>/availability` messages become `online` readings.
Zigbee devices bound by `friendly_name` keep their configured id; others are named by their friendly
name. ChirpStack events are bound to devices by DevEUI; events of unbound DevEUIs are counted and
skipped, and malformed events are counted as decode errors. The source only
moves bytes: the firmware_adapters helpers turn a message into a RawFrame, the codec decodes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from core.types import RawFrame
from edge_agent.bindings import BindingsHolder
from edge_agent.config import LocalMqttConfig
from edge_agent.sources.base import Backoff, SourceContext
from edge_agent.sources.mqtt_intake import MqttIntake, MqttIntakeError
from firmware_adapters.chirpstack import frame_from_up_event, parse_up_event
from firmware_adapters.errors import DecodeError
from firmware_adapters.zigbee2mqtt_exposes import (
    BASE_TOPIC,
    BridgeDevicesError,
    Z2mDevice,
    frame_from_z2m_message,
    parse_bridge_devices,
)

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
        max_pending: int = 2000,
    ) -> None:
        """Prepare the source; nothing connects until `run()`.

        `max_pending` bounds the messages read from the broker but not yet handed to the pipeline;
        beyond it the socket is not read, so a backlog waits in the broker.
        """
        self.name = name
        self.broker = broker
        self.bindings = bindings
        self.ctx = ctx
        self.client_id = client_id
        self.backoff = backoff or Backoff(first=0.2, maximum=30.0)
        self.max_pending = max_pending
        self.z2m_base = broker.zigbee2mqtt.base_topic if broker.zigbee2mqtt else None
        self.chirpstack_app = broker.chirpstack.application_id if broker.chirpstack else None
        self.index: dict[str, Z2mDevice] = {}
        """Zigbee2MQTT devices by friendly name, from the retained bridge/devices."""
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
            intake = MqttIntake(
                self.broker.host,
                self.broker.port,
                client_id=self.client_id,
                topics=self.topics(),
                keepalive_s=self.broker.keepalive_s,
                max_pending=self.max_pending,
                on_subscribed=self._subscribed,
            )
            keepalive: asyncio.Task[None] | None = None
            try:
                await intake.connect()
                keepalive = asyncio.create_task(intake.keepalive(), name=f"mqtt-{self.name}-ping")
                while True:
                    await self.handle_batch(await intake.take())
            except MqttIntakeError as err:
                _LOG.warning("mqtt %s: %s", self.name, err)
            finally:
                self.connected = False
                if keepalive is not None:
                    keepalive.cancel()
                intake.close()
            await asyncio.sleep(self.backoff.next_delay())

    def _subscribed(self) -> None:
        self.connected = True
        self.connections += 1
        self.backoff.reset()
        _LOG.info("mqtt %s: connected to %s:%s", self.name, self.broker.host, self.broker.port)

    async def handle(self, topic: str, payload: bytes) -> None:
        """Route one message (public so tests can inject messages at the source boundary)."""
        await self.handle_batch([(topic, payload)])

    async def handle_batch(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Route messages received together; they share one receive time."""
        now = self.ctx.clock.now()
        z2m_prefix = None if self.z2m_base is None else self.z2m_base + "/"
        for topic, payload in messages:
            if z2m_prefix is not None and topic.startswith(z2m_prefix):
                await self._zigbee(topic, payload, now)
            elif self.chirpstack_app is not None and topic.startswith("application/"):
                await self._chirpstack(topic, payload, now)

    # --- Zigbee2MQTT -----------------------------------------------------------------------------

    async def _zigbee(self, topic: str, payload: bytes, now: datetime) -> None:
        base = self.z2m_base or BASE_TOPIC
        if topic == f"{base}/bridge/devices":
            try:
                self.index = parse_bridge_devices(payload or b"[]")
            except BridgeDevicesError as err:
                self.skipped["zigbee_bad_bridge_devices"] += 1
                _LOG.warning("mqtt %s: %s", self.name, err)
            return
        frame = frame_from_z2m_message(
            topic, payload, self.index, now, base_topic=base, source_id=self.name
        )
        if frame is None:
            return
        device = self.bindings.current.by_friendly_name.get(frame.meta["friendly_name"])
        if device is not None:
            # A bound device keeps its configured id; unbound ones are named by their friendly name.
            frame = RawFrame(
                frame.source_id,
                frame.codec_id,
                frame.payload,
                now,
                {**frame.meta, "device_id": device.id},
            )
        await self.ctx.submit(frame)

    # --- ChirpStack --------------------------------------------------------------------------------

    async def _chirpstack(self, topic: str, payload: bytes, now: datetime) -> None:
        if not topic.endswith("/event/up"):
            return
        try:
            event = parse_up_event(payload)
        except DecodeError as err:
            self.ctx.stats.count_decode_error(err.codec_id, err.reason.value)
            return
        device = self.bindings.current.by_dev_eui.get(event.dev_eui.lower())
        if device is None:
            self.skipped["lorawan_unbound"] += 1
            return
        frame = frame_from_up_event(
            event, device.codec, now, device_id=device.id, source_id=self.name
        )
        await self.ctx.submit(frame)
