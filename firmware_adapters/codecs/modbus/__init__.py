"""Codecs for the `modbus` transport; CODECS lists every module's CODEC explicitly."""

from __future__ import annotations

from firmware_adapters.codec import Codec

CODECS: tuple[Codec, ...] = ()
