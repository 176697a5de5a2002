"""Device bindings: which device a transport address belongs to, replaceable while running."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from core.derived import Derivation
from core.site import DeviceInfo
from edge_agent.config import DeviceConfig


@dataclass(frozen=True, slots=True)
class Bindings:
    """Lookups from LoRaWAN DevEUI, Zigbee friendly name and panel account to bound devices."""

    devices: Mapping[str, DeviceConfig]
    by_dev_eui: Mapping[str, DeviceConfig]
    by_friendly_name: Mapping[str, DeviceConfig]
    by_account: Mapping[str, DeviceConfig]

    @classmethod
    def build(cls, devices: Iterable[DeviceConfig]) -> Bindings:
        """Index devices by every address they are bound to."""
        items = tuple(devices)
        return cls(
            devices=MappingProxyType({d.id: d for d in items}),
            by_dev_eui=MappingProxyType({d.dev_eui.lower(): d for d in items if d.dev_eui}),
            by_friendly_name=MappingProxyType(
                {d.friendly_name: d for d in items if d.friendly_name}
            ),
            by_account=MappingProxyType({d.account.upper(): d for d in items if d.account}),
        )

    def infos(self) -> dict[str, DeviceInfo]:
        """What the rule engine needs to know about every bound device."""
        return {device_id: device.info() for device_id, device in self.devices.items()}

    def derivations(self) -> dict[str, tuple[Derivation, ...]]:
        """The derived readings of every bound device that declares some (for the pipeline)."""
        return {
            device_id: derived
            for device_id, device in self.devices.items()
            if (derived := device.derivations())
        }


class BindingsHolder:
    """The current bindings; sources read `.current` on every message so a swap applies at once."""

    def __init__(self, bindings: Bindings) -> None:
        """Start with `bindings`."""
        self.current = bindings

    def replace(self, bindings: Bindings) -> None:
        """Swap in new bindings."""
        self.current = bindings

    def account_device(self, account: str) -> str | None:
        """Return the device id bound to a panel account, or None."""
        device = self.current.by_account.get(account.upper())
        return device.id if device else None
