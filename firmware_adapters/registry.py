"""The one codec registry: an explicit, static map from codec id to `Codec`.

No import side effects, no entry points, no folder scanning: each transport package lists its codec
modules explicitly, and `tests/firmware_adapters/test_registry.py` fails when a module is missing here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from firmware_adapters.codec import TRANSPORTS, Codec
from firmware_adapters.codecs import ip, lorawan, modbus, serial, zigbee2mqtt
from firmware_adapters.errors import UnknownCodecError


def index_codecs(codecs: Iterable[Codec]) -> Mapping[str, Codec]:
    """Index codecs by id, refusing duplicates, malformed ids and codecs that declare no metrics."""
    index: dict[str, Codec] = {}
    for codec in codecs:
        parts = codec.id.split(".")
        if len(parts) != 3 or parts[0] not in TRANSPORTS:  # noqa: PLR2004 - transport.vendor.model
            msg = f"codec id {codec.id!r} is not <transport>.<vendor>.<model>"
            raise ValueError(msg)
        if not codec.metrics:
            msg = f"codec {codec.id!r} declares no metrics"
            raise ValueError(msg)
        if codec.id in index:
            msg = f"codec id {codec.id!r} registered twice"
            raise ValueError(msg)
        index[codec.id] = codec
    return MappingProxyType(index)


# Each transport package lists its codec modules' CODEC objects explicitly.
CODECS: Final[Mapping[str, Codec]] = index_codecs(
    [*lorawan.CODECS, *zigbee2mqtt.CODECS, *modbus.CODECS, *serial.CODECS, *ip.CODECS]
)


def get_codec(codec_id: str) -> Codec:
    """Return the codec registered under `codec_id`."""
    try:
        return CODECS[codec_id]
    except KeyError:
        msg = f"no codec {codec_id!r}; known: {', '.join(sorted(CODECS))}"
        raise UnknownCodecError(msg) from None
