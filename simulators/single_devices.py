"""One-device scenarios behind `propsim serial` and `propsim mqtt` (and the device fixtures)."""

from __future__ import annotations

from pathlib import Path

from simulators.scenario import Scenario

SERIAL_CODECS = {
    "gbt26875": ("serial.gbt26875.3", "fire_panel", "fire"),
    "contact-id": ("serial.ademco.contact_id", "alarm_panel", "breach"),
    "modbus": ("modbus.dfrobot.sen0492", "level", "flood"),
}
"""`propsim serial` protocol -> (codec id, device kind, incident raised by --alarm-at)."""

MQTT_CODECS = {
    "zigbee2mqtt": ("zigbee2mqtt.generic.exposes", "smoke", "fire"),
    "chirpstack": ("lorawan.milesight.em310_udl", "bin", "overflow"),
}
"""`propsim mqtt` kind -> default (codec id, device kind, incident)."""

KIND_OF_INCIDENT = {"fire": "smoke", "breach": "perimeter", "flood": "manhole", "overflow": "bin"}


def _scenario(
    name: str,
    devices: list[dict[str, object]],
    *,
    seed: int,
    duration: float,
    incident: str,
    alarm_at: float | None,
    alarm_for: float,
    unplug: tuple[float, float] | None = None,
) -> Scenario:
    timeline: list[dict[str, object]] = (
        [
            {
                "at": alarm_at,
                "device": str(devices[0]["id"]),
                "incident": incident,
                "duration": alarm_for,
            }
        ]
        if alarm_at is not None
        else []
    )
    if unplug is not None:
        at, length = unplug
        timeline.append({"at": at, "fault": "unplug", "duration": length})
    return Scenario.model_validate(
        {
            "name": name,
            "seed": seed,
            "duration": duration,
            "site": {"compounds": [{"id": "c1"}]},
            "devices": devices,
            "timeline": timeline,
        }
    )


def serial_device(
    protocol: str,
    link: Path | str,
    *,
    interval: float = 10.0,
    duration: float = 3600.0,
    seed: int = 0,
    alarm_at: float | None = None,
    alarm_for: float = 60.0,
    slave_id: int = 1,
    unplug: tuple[float, float] | None = None,
) -> Scenario:
    """A scenario with one serial device of `protocol` on `link`.

    `unplug=(at, seconds)` pulls the cable for a while (the link disappears and comes back).
    """
    codec, kind, incident = SERIAL_CODECS[protocol]
    device: dict[str, object] = {
        "id": f"{protocol}-1",
        "kind": kind,
        "codec": codec,
        "transport": codec.split(".", 1)[0],
        "location": "c1",
        "interval": interval,
        "tick": min(interval, 1.0),
        "address": {"link": str(link), "slave_id": slave_id},
    }
    if incident == "flood":
        # The alarm shows within its window: the water rises to the cover in half of it.
        device["params"] = {"flood_rise_s": max(1.0, alarm_for / 2)}
    return _scenario(
        f"serial-{protocol}",
        [device],
        seed=seed,
        duration=duration,
        incident=incident,
        alarm_at=alarm_at,
        alarm_for=alarm_for,
        unplug=unplug,
    )


def mqtt_devices(
    kind: str,
    *,
    count: int = 3,
    codec: str | None = None,
    interval: float = 10.0,
    duration: float = 3600.0,
    seed: int = 0,
    alarm_at: float | None = None,
    alarm_for: float = 60.0,
    device_kind: str | None = None,
) -> Scenario:
    """A scenario with `count` Zigbee2MQTT or ChirpStack devices of one model."""
    default_codec, default_kind, incident = MQTT_CODECS[kind]
    codec = codec or default_codec
    dkind = device_kind or default_kind
    incident = {"smoke": "fire", "perimeter": "breach", "manhole": "lift", "bin": "overflow"}.get(
        dkind, incident
    )
    devices: list[dict[str, object]] = [
        {
            "id": f"{kind}-{i + 1}",
            "kind": dkind,
            "codec": codec,
            "transport": codec.split(".", 1)[0],
            "location": "c1",
            "interval": interval,
            "tick": min(interval, 1.0),
        }
        for i in range(count)
    ]
    return _scenario(
        f"mqtt-{kind}",
        devices,
        seed=seed,
        duration=duration,
        incident=incident,
        alarm_at=alarm_at,
        alarm_for=alarm_for,
    )
