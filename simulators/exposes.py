"""Real Zigbee2MQTT device definitions for the simulated bridge (`zigbee2mqtt_models.yaml`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import yaml

from firmware_adapters.codecs.zigbee2mqtt.generic_exposes import PROPERTY_OF

MODELS_FILE = Path(__file__).with_name("zigbee2mqtt_models.yaml")

DEFAULT_MODEL = {
    "smoke": "HS3SA/HS1SA",
    "perimeter": "TS0203",
    "meter": "SNZB-05",
    "manhole": "DJT11LM",
    "alarm_panel": "TS0202",
}
"""The model a Zigbee device of a kind is, unless the scenario names one (`address.model`)."""


@cache
def models() -> Mapping[str, Mapping[str, object]]:
    """Every known model: `{model: {vendor, description, zigbee_model, exposes, source}}`."""
    data = yaml.safe_load(MODELS_FILE.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{MODELS_FILE} is not a mapping")
    return data


def model_of(kind: str, explicit: str | None = None) -> str:
    """The model of a device: the scenario's choice, else the default for its kind."""
    model = explicit or DEFAULT_MODEL.get(kind)
    if model is None or model not in models():
        raise ValueError(f"no Zigbee model {model!r} for kind {kind!r}; known: {sorted(models())}")
    return model


def exposes_for(model: str) -> list[dict[str, object]]:
    """The model's exposes, as Zigbee2MQTT lists them in `bridge/devices` (empty if unknown)."""
    entry = models().get(model)
    if entry is None:
        return []
    exposes = entry.get("exposes", [])
    return list(exposes) if isinstance(exposes, list) else []


def exposed_properties(model: str) -> set[str]:
    """Property names a model reports (flattening composite exposes)."""
    out: set[str] = set()

    def walk(items: Sequence[object]) -> None:
        for item in items:
            if isinstance(item, Mapping):
                prop = item.get("property")
                if isinstance(prop, str):
                    out.add(prop)
                features = item.get("features")
                if isinstance(features, list):
                    walk(features)

    walk(exposes_for(model))
    return out


def state_values(model: str, values: Mapping[str, object]) -> dict[str, object]:
    """Keep only the canonical values whose Zigbee2MQTT property the model exposes."""
    props = exposed_properties(model)
    return {k: v for k, v in values.items() if PROPERTY_OF.get(k) in props}
