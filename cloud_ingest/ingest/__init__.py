"""The intake: messages from gateways (MQTT or HTTP) to stored telemetry and alarm events."""
