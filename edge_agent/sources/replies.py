"""Answers that bidirectional serial protocols owe their devices, by codec id.

A fire-alarm transmission device (GB/T 26875.3) repeats every `send data` frame until the receiver
confirms it, so the serial source answers each good frame at once, before decoding; frames that are
themselves confirmations get no answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from edge_agent.sources.base import Reply
from firmware_adapters.errors import DecodeError
from firmware_adapters.gbt26875.frame import CODEC_ID as GBT_CODEC_ID


def gbt26875_reply(frame: bytes) -> bytes | None:
    """Return the confirm frame for a GB/T 26875.3 `send data` or `control` frame, else None."""
    from firmware_adapters.codecs.serial.gbt26875_3 import confirm_reply  # noqa: PLC0415
    from firmware_adapters.gbt26875.frame import Command, parse_frame  # noqa: PLC0415

    try:
        parsed = parse_frame(frame)
        if parsed.command not in {Command.SEND, Command.CONTROL}:
            return None
        return confirm_reply(frame)
    except DecodeError:
        return None


REPLIES: Final[Mapping[str, Reply]] = MappingProxyType({GBT_CODEC_ID: gbt26875_reply})
"""Reply builders of the serial codecs whose devices expect an answer."""
