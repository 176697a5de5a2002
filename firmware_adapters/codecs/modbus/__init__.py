"""Codecs for the `modbus` transport; CODECS lists every module's CODEC explicitly."""

from __future__ import annotations

from firmware_adapters.codec import Codec
from firmware_adapters.codecs.modbus import dfrobot_sen0310, dfrobot_sen0492, generic_table

CODECS: tuple[Codec, ...] = (dfrobot_sen0492.CODEC, dfrobot_sen0310.CODEC, generic_table.CODEC)
