"""Errors raised by framers and codecs."""

from __future__ import annotations

from enum import StrEnum


class DecodeReason(StrEnum):
    """Why a frame could not be decoded; used as the `reason` label of `decode_errors`."""

    TRUNCATED = "truncated"
    """The frame ends before a field it announces."""
    CHECKSUM = "checksum"
    """CRC, sum or mod-15 check failed."""
    LENGTH = "length"
    """A length field disagrees with the data or exceeds the format's limit."""
    MALFORMED = "malformed"
    """The bytes do not follow the format (bad delimiter, bad digit, invalid JSON)."""
    UNKNOWN_PORT = "unknown_port"
    """A LoRaWAN fPort the codec does not know."""
    UNKNOWN_TYPE = "unknown_type"
    """A channel, type or command byte the codec does not know."""
    RANGE = "range"
    """A field value impossible for the format (not merely out of the metric's range)."""
    UNSUPPORTED = "unsupported"
    """A valid message this codec deliberately does not handle."""


class AdapterError(Exception):
    """Base of every error raised by `firmware_adapters`."""


class DecodeError(AdapterError):
    """A frame could not be decoded. Codecs raise this, never return `None` for failure."""

    def __init__(self, codec_id: str, reason: DecodeReason, detail: str, raw: bytes = b"") -> None:
        """Record the codec, the reason (a counter label), a human detail and the raw bytes."""
        self.codec_id = codec_id
        self.reason = reason
        self.detail = detail
        self.raw_hex = raw.hex()
        super().__init__(f"{codec_id}: {reason.value}: {detail}")


class EncodeError(AdapterError):
    """Values given to an encoder cannot be represented in the wire format."""


class UnknownCodecError(AdapterError, KeyError):
    """No codec is registered under the requested id."""
