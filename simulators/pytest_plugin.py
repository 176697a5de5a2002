"""The Steward pytest plugin (entry point `steward`): real services and simulated devices as fixtures.

See docs/simulators.md. Fixture modules are imported here so pytest registers their fixtures.

Installing Steward registers this plugin in every pytest run of that environment, so it must load
even where the simulators cannot run: the service fixtures need only pytest, and when the device
fixtures' dependencies (pytest-asyncio and the `sim` extra) are missing, each device fixture fails
the test that asks for it with the line to install, instead of breaking the whole pytest run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import pytest

from simulators.fixtures_services import (
    mosquitto,
    mosquitto_factory,
    postgres_server,
    postgres_url,
    victoria_metrics,
)

INSTALL_HINT = "pip install 'steward-iot[sim]'"
"""What installs everything the device fixtures need."""
DEVICE_FIXTURES = ("chirpstack_sim", "run_scenario", "virtual_serial_device", "zigbee2mqtt_sim")
"""The fixtures that play simulated devices (`simulators.fixtures_devices`)."""


def _unavailable(name: str, missing: str) -> Callable[[], NoReturn]:
    """A stand-in for the device fixture `name`, which cannot work without the module `missing`."""

    @pytest.fixture(name=name)
    def fixture() -> NoReturn:
        pytest.fail(
            f"the Steward fixture {name!r} needs the module {missing!r}: {INSTALL_HINT}",
            pytrace=False,
        )

    return fixture


try:
    from simulators.fixtures_devices import (
        chirpstack_sim,
        run_scenario,
        virtual_serial_device,
        zigbee2mqtt_sim,
    )
except ModuleNotFoundError as err:  # installed without the `sim` extra: stand-ins that say so
    globals().update({name: _unavailable(name, err.name or str(err)) for name in DEVICE_FIXTURES})

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
