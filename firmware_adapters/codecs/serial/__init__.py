"""Codecs for the `serial` transport; CODECS lists every module's CODEC explicitly."""

from __future__ import annotations

from firmware_adapters.codec import Codec
from firmware_adapters.codecs.serial import ademco_contact_id, gbt26875_3

CODECS: tuple[Codec, ...] = (gbt26875_3.CODEC, ademco_contact_id.CODEC)
