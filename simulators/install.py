"""What an installer writes into a gateway's config for a scenario's simulated devices.

A real installer measures the mounting of a bin or well sensor on site and writes it into the
binding's `derive` key (`core.derived`); for a simulated device those numbers are the model's own
geometry. `derive_for(device)` returns that mapping, and `gateway_config(scenario, ...)` a whole
`edge-agent` config binding every device of a scenario (the demo's, and the scored scenario tests'),
so simulated devices are bound as an installer would bind the real ones.
"""

from __future__ import annotations

from pathlib import Path

from core.metrics import Metric
from firmware_adapters.registry import get_codec
from simulators.encoding import stable_hex
from simulators.modbus_device import table_size, table_start
from simulators.models import BinFill, ManholeCover
from simulators.runner import RunOptions, link_of
from simulators.scenario import Device, Scenario

SENSOR_GAP_MM = 150.0
"""How far above a bin's full line the simulated sensor sits (`BinFill` reports distance + 150)."""


def _param(device: Device, name: str, default: float) -> float:
    value = device.params.get(name, default)
    return float(value) if isinstance(value, int | float) else default


def derive_for(device: Device) -> dict[str, dict[str, object]]:
    """The `derive` mapping of a simulated device's binding (empty when it needs none)."""
    metrics = get_codec(device.codec).metrics
    if device.kind == "bin" and Metric.DISTANCE_MM in metrics:
        depth = _param(device, "depth_mm", BinFill.depth_mm)
        return {
            "fill_pct": {
                "from": "distance_mm",
                "empty_mm": depth + SENSOR_GAP_MM,
                "full_mm": SENSOR_GAP_MM,
            }
        }
    if device.kind in {"manhole", "level"} and Metric.DISTANCE_MM in metrics:
        depth = _param(device, "shaft_depth_mm", ManholeCover.shaft_depth_mm)
        return {"water_level_mm": {"from": "distance_mm", "depth_mm": depth}}
    if device.kind == "perimeter":
        flags = [m.value for m in (Metric.CONTACT_OPEN, Metric.OCCUPANCY) if m in metrics]
        if flags and Metric.INTRUSION not in metrics:
            return {"intrusion": {"from": flags if len(flags) > 1 else flags[0]}}
    return {}


MODBUS_POLL_S = 30.0
"""How often the gateway polls a simulated Modbus sensor, in simulated seconds."""


def gateway_config(
    scenario: Scenario,
    *,
    state_dir: Path,
    local: tuple[str, int],
    uplink: tuple[str, int],
    dc09: tuple[str, int] | None = None,
    rules: tuple[str, ...] = ("pack:default",),
    timezone: str = "Asia/Shanghai",
) -> dict[str, object]:
    """An `edge-agent` config (as a YAML-ready mapping) binding every device of `scenario`.

    `local` is the broker ChirpStack and Zigbee2MQTT publish to, `uplink` the cloud's broker,
    `dc09` where the gateway's SIA DC-09 receiver listens (give `propsim run --receiver` the same);
    serial devices and Modbus lines are read from the links `propsim run` creates
    (`simulators.runner.link_of`, in its default serial directory).
    """
    serial_dir = RunOptions().serial_dir
    devices: list[dict[str, object]] = []
    serial: list[dict[str, object]] = []
    buses: dict[str, str] = {}
    for device in scenario.devices:
        binding: dict[str, object] = {
            "id": device.id,
            "codec": device.codec,
            "kind": device.kind,
            "location": str(scenario.location(device)),
            "expected_interval_s": device.interval,
        }
        derive = derive_for(device)
        if derive:
            binding["derive"] = derive
        if device.transport == "lorawan":
            binding["dev_eui"] = str(device.address.get("dev_eui", stable_hex(device.id, 16)))
        elif device.transport == "zigbee2mqtt":
            binding["friendly_name"] = str(device.address["friendly_name"])
        elif device.transport == "serial":
            port = str(link_of(device, serial_dir))
            serial.append(
                {"id": device.id, "port": port, "codec": device.codec, "device": device.id}
            )
        elif device.transport == "modbus":
            binding["modbus"] = _modbus_binding(device, link_of(device, serial_dir), buses)
        elif device.transport == "ip":
            binding["account"] = str(device.address.get("account", "1234"))
        devices.append(binding)
    sources: dict[str, object] = {
        "serial": serial,
        "mqtt": {
            "host": local[0],
            "port": local[1],
            "zigbee2mqtt": {"base_topic": "zigbee2mqtt"},
            "chirpstack": {"application_id": "+"},
        },
        "modbus": [{"id": bus, "port": port} for port, bus in buses.items()],
    }
    if dc09 is not None:
        sources["dc09"] = {"host": dc09[0], "port": dc09[1]}
    return {
        "gateway": {
            "id": scenario.gateway_id,
            "site": scenario.site.path,  # devices' locations are full paths below it
            "timezone": timezone,
        },
        "state_dir": str(state_dir),
        "sources": sources,
        "devices": devices,
        "rules": list(rules),
        "uplink": {"host": uplink[0], "port": uplink[1], "batch_wait_s": 0.2},
        "pipeline": {"stats_interval_s": 10},
    }


def _modbus_binding(device: Device, link: Path, buses: dict[str, str]) -> dict[str, object]:
    """Poll the device's register table on the RS-485 line `link` the simulator serves it on."""
    codec = get_codec(device.codec)
    first, default_slave = table_start(codec)
    bus = buses.setdefault(str(link), f"rs485-{len(buses) + 1}")
    return {
        "bus": bus,
        "slave": int(device.address.get("slave_id", default_slave)),
        "interval_s": min(device.interval, MODBUS_POLL_S),
        "registers": [{"table": "holding", "address": first, "count": table_size(codec)}],
    }
