"""Codecs for the `zigbee2mqtt` transport; CODECS lists every module's CODEC explicitly."""

from __future__ import annotations

from firmware_adapters.codec import Codec
from firmware_adapters.codecs.zigbee2mqtt import generic_exposes

CODECS: tuple[Codec, ...] = (generic_exposes.CODEC,)
