"""Codecs for the `ip` transport; CODECS lists every module's CODEC explicitly."""

from __future__ import annotations

from firmware_adapters.codec import Codec
from firmware_adapters.codecs.ip import sia_dc09

CODECS: tuple[Codec, ...] = (sia_dc09.CODEC,)
