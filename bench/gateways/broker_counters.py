"""Counters a Mosquitto broker publishes under `$SYS`, read after a run.

Mosquitto drops a QoS 0 message for a subscriber whose queue already holds `max_queued_messages`
(a gateway that cannot keep up with its local broker), and counts it in
`$SYS/broker/publish/messages/dropped`. Read from the local broker after a run, it tells what was
lost before the gateway ever saw it from what the gateway itself lost.
"""

from __future__ import annotations

import time
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.sources.mqtt import BROKER_DROPPED_TOPIC

SYS_INTERVAL_CONFIG: Final = "sys_interval 1"
"""Broker config line: `$SYS` counters are published every second (default 10 s)."""


def broker_dropped(port: int, *, host: str = "127.0.0.1", timeout_s: float = 5.0) -> int | None:
    """The broker's count of dropped messages (None if it published none within `timeout_s`).

    `$SYS` topics are retained, so the latest value arrives right after subscribing; a broker with
    `SYS_INTERVAL_CONFIG` has refreshed it within the last second.
    """
    found: list[int] = []

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            found.append(int(message.payload))
        except ValueError:
            return

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sys-{time.monotonic_ns()}")
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError:
        return None
    try:
        client.subscribe(BROKER_DROPPED_TOPIC)
        deadline = time.monotonic() + timeout_s
        while not found and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    finally:
        client.disconnect()
    return found[-1] if found else None
