"""The local MQTT broker as a source: Zigbee2MQTT device state and ChirpStack v4 `up` events.

Messages come in batches from `MqttIntake` (one socket read, split into MQTT packets, on the event
loop), with a reconnect loop and jittered backoff. A persistent session with QoS 1 subscriptions
keeps messages that arrive while the agent restarts, and QoS 1 messages are acknowledged only once
their frames are stored (or found to carry nothing), so a QoS 1 publisher loses nothing if the agent
is killed. The retained
`zigbee2mqtt/bridge/devices` arrives on every (re)subscribe and refreshes the model index (models and
exposes ride along in the frames), and `<name>/availability` messages become `online` readings.
Zigbee devices bound by `friendly_name` keep their configured id; others are named by their friendly
name; what a topic resolves to is kept per topic until the device index or the bindings change.
ChirpStack events are bound to devices by DevEUI; events of unbound DevEUIs are counted and
skipped, and malformed events are counted as decode errors and dead-lettered (through the context);
an unforeseen failure while reading an event is one more such error (`codec_error`, logged with its
traceback once per kind), never the end of the source. The source only
moves bytes: the firmware_adapters helpers turn a message into a RawFrame, the codec decodes it.

QoS 0 messages (what Zigbee2MQTT and ChirpStack send by default) that the broker drops because the
agent fell behind never reach it; Mosquitto counts them in `$SYS/broker/publish/messages/dropped`
(every client's, published every `sys_interval`, 10 s by default). The source follows that topic
(`broker_drops`, on by default; a broker that refuses it is only logged) and keeps the last count in
the self-statistics as `local_broker_dropped_total`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from core.types import RawFrame
from edge_agent.bindings import BindingsHolder
from edge_agent.config import LocalMqttConfig
from edge_agent.dead_letter import FailureLog
from edge_agent.sources.base import Backoff, SourceContext
from edge_agent.sources.mqtt_intake import MqttIntake, MqttIntakeError
from firmware_adapters.chirpstack import PARSER_ID, frame_from_up_event, parse_up_event
from firmware_adapters.errors import DecodeError, DecodeReason, internal_error
from firmware_adapters.zigbee2mqtt_exposes import (
    BASE_TOPIC,
    CODEC_ID,
    BridgeDevicesError,
    Z2mDevice,
    meta_for_topic,
    parse_bridge_devices,
)

_LOG = logging.getLogger(__name__)

BROKER_DROPPED_TOPIC: Final = "$SYS/broker/publish/messages/dropped"
"""Mosquitto's count of dropped messages (queues full); retained, refreshed every `sys_interval`."""

MQTT_PROTOCOL_CODEC: Final = "mqtt"
"""The codec id protocol errors of the local broker are counted under (`decode_errors`)."""

_ROUTES_MAX: Final = 10_000
"""Zigbee2MQTT topics whose frame metadata is kept (forgotten all at once beyond this)."""


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
        self.connected = False
        self.connections = 0
        self._routes: dict[str, Mapping[str, str] | None] = {}
        self._routes_of: tuple[object, object] = (None, None)
        self._bridge_topic = f"{self.z2m_base or BASE_TOPIC}/bridge/devices"
        self._failures = FailureLog(_LOG)

    @property
    def skipped(self) -> Counter[str]:
        """Messages this source could not route, by reason (also in the self-statistics)."""
        return Counter(
            {
                reason: n
                for (source, reason), n in self.ctx.stats.skipped.items()
                if source == self.name
            }
        )

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
                optional_topics=[BROKER_DROPPED_TOPIC] if self.broker.broker_drops else [],
                keepalive_s=self.broker.keepalive_s,
                max_pending=self.max_pending,
                on_subscribed=self._subscribed,
                on_bad_topic=self._bad_topic,
                on_protocol_error=self._protocol_error,
            )
            keepalive: asyncio.Task[None] | None = None
            try:
                await intake.connect()
                keepalive = asyncio.create_task(intake.keepalive(), name=f"mqtt-{self.name}-ping")
                while True:
                    received = await intake.take()
                    intake.acknowledge(received.acks, await self.handle_batch(received.messages))
            except MqttIntakeError as err:
                _LOG.warning("mqtt %s: %s", self.name, err)
            finally:
                self.connected = False
                if keepalive is not None:
                    keepalive.cancel()
                intake.close()
            await asyncio.sleep(self.backoff.next_delay())

    def _skip(self, reason: str) -> None:
        self.ctx.stats.count_skipped(self.name, reason)

    def _bad_topic(self) -> None:
        self._skip("bad_topic")

    def _protocol_error(self, reason: str) -> None:
        # The broker broke MQTT (the connection ends and is made again): a framing error of the
        # transport, counted as `decode_errors{codec="mqtt", reason}`.
        self.ctx.stats.count_decode_error(MQTT_PROTOCOL_CODEC, reason)

    def _subscribed(self) -> None:
        self.connected = True
        self.connections += 1
        self.backoff.reset()
        _LOG.info("mqtt %s: connected to %s:%s", self.name, self.broker.host, self.broker.port)

    async def handle(self, topic: str, payload: bytes) -> None:
        """Route one message (public so tests can inject messages at the source boundary)."""
        await self.handle_batch([(topic, payload)])

    async def handle_batch(self, messages: Sequence[tuple[str, bytes]]) -> asyncio.Future[None]:
        """Route messages received together (one receive time); hand their frames on at once.

        Returns the future that is done once those frames are stored.
        """
        now = self.ctx.clock.now()
        z2m_prefix = None if self.z2m_base is None else self.z2m_base + "/"
        frames: list[RawFrame] = []
        for topic, payload in messages:
            frame = None
            if z2m_prefix is not None and topic.startswith(z2m_prefix):
                frame = self._zigbee(topic, payload, now)
            elif self.chirpstack_app is not None and topic.startswith("application/"):
                frame = self._chirpstack(topic, payload, now)
            elif topic == BROKER_DROPPED_TOPIC:
                self._broker_dropped(payload)
            if frame is not None:
                frames.append(frame)
        return await self.ctx.submit_all(frames)

    def _broker_dropped(self, payload: bytes) -> None:
        try:
            count = int(payload)
        except ValueError:
            count = -1
        if count < 0:
            self._skip("bad_broker_count")
            return
        seen = self.ctx.stats.broker_dropped
        before = seen.get(self.name)
        if before is not None and count > before:
            _LOG.warning(
                "mqtt %s: the broker dropped %d more messages"
                " (a subscriber, maybe this agent, is not keeping up)",
                self.name,
                count - before,
            )
        seen[self.name] = count

    # --- Zigbee2MQTT -----------------------------------------------------------------------------

    def _zigbee(self, topic: str, payload: bytes, now: datetime) -> RawFrame | None:
        if topic == self._bridge_topic:
            try:
                self.index = parse_bridge_devices(payload or b"[]")
            except BridgeDevicesError as err:
                self._skip("zigbee_bad_bridge_devices")
                _LOG.warning("mqtt %s: %s", self.name, err)
            return None
        if not payload:
            return None
        routes = self._routes
        bindings = self.bindings.current
        if self._routes_of[0] is not self.index or self._routes_of[1] is not bindings:
            routes.clear()
            self._routes_of = (self.index, bindings)
        try:
            meta = routes[topic]
        except KeyError:
            meta = self._route(topic)
            if len(routes) >= _ROUTES_MAX:
                routes.clear()
            routes[topic] = meta
        return None if meta is None else RawFrame(self.name, CODEC_ID, payload, now, meta)

    def _route(self, topic: str) -> Mapping[str, str] | None:
        """The frame metadata of a Zigbee2MQTT topic, with the bound device id; None if no frame."""
        meta = meta_for_topic(topic, self.index, base_topic=self.z2m_base or BASE_TOPIC)
        if meta is None:
            return None
        device = self.bindings.current.by_friendly_name.get(meta["friendly_name"])
        if device is not None:
            # A bound device keeps its configured id; unbound ones are named by their friendly name.
            meta["device_id"] = device.id
        return meta

    # --- ChirpStack --------------------------------------------------------------------------------

    def _chirpstack(self, topic: str, payload: bytes, now: datetime) -> RawFrame | None:
        if not topic.endswith("/event/up"):
            return None
        try:
            event = parse_up_event(payload)
            device = self.bindings.current.by_dev_eui.get(event.dev_eui.lower())
            if device is None:
                self._skip("lorawan_unbound")
                return None
            return frame_from_up_event(
                event, device.codec, now, device_id=device.id, source_id=self.name
            )
        except DecodeError as err:
            error = err
        except Exception as err:  # noqa: BLE001 - one bad event must not take the source down
            error = internal_error(PARSER_ID, err, payload)
            error.__cause__ = err
        if error.reason is DecodeReason.CODEC_ERROR:
            self._failures.report(error.codec_id, f"on {topic}", error)
        raw = RawFrame(self.name, error.codec_id, payload, now, {"topic": topic})
        self.ctx.refuse(raw, error.reason.value, error.detail)
        return None
