"""A plain MQTT subscriber on the gateways' uplink, and whether the cloud stored what it saw.

`Capture` keeps every envelope the broker took on `steward/v1/+/up`, by batch id (a re-sent batch
is kept once); `caught_up` tells whether the ingest stored exactly those batches.
"""

from __future__ import annotations

import threading
import time
from uuid import UUID

import paho.mqtt.client as mqtt
from ingest_server import stored_batches
from paho.mqtt.enums import CallbackAPIVersion

from core.envelope_json import loads
from core.types import Envelope
from simulators.services import Mosquitto


class Capture:
    """A plain MQTT subscriber on `steward/v1/+/up`: every envelope the broker took, by batch id."""

    def __init__(self, broker: Mosquitto, client_id: str = "capture") -> None:
        """Subscribe (QoS 1) and return once the broker confirmed the subscription."""
        self.envelopes: dict[UUID, Envelope] = {}
        self._lock = threading.Lock()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        self._client.subscribe("steward/v1/+/up", qos=1)
        assert subscribed.wait(10)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        envelope = loads(bytes(msg.payload))
        with self._lock:
            self.envelopes[envelope.batch_id] = envelope

    def snapshot(self) -> list[Envelope]:
        """The envelopes captured so far."""
        with self._lock:
            return list(self.envelopes.values())

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()


def caught_up(db_url: str, capture: Capture) -> bool:
    """The stored batches are the captured ones, and still are a moment later."""
    for _ in range(2):
        if stored_batches(db_url) != set(capture.envelopes):
            return False
        time.sleep(0.3)
    return True
