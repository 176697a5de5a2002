"""The Steward pytest plugin (entry point `steward`): real services and simulated devices as fixtures.

See docs/simulators.md. Fixture modules are imported here so pytest registers their fixtures.
"""

from __future__ import annotations

from simulators.fixtures_devices import (
    chirpstack_sim,
    run_scenario,
    virtual_serial_device,
    zigbee2mqtt_sim,
)
from simulators.fixtures_services import (
    mosquitto,
    mosquitto_factory,
    postgres_server,
    postgres_url,
    victoria_metrics,
)

__all__ = [
    "chirpstack_sim",
    "mosquitto",
    "mosquitto_factory",
    "postgres_server",
    "postgres_url",
    "run_scenario",
    "victoria_metrics",
    "virtual_serial_device",
    "zigbee2mqtt_sim",
]
