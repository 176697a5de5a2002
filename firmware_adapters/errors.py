"""Errors raised by framers and codecs."""

from __future__ import annotations

from enum import StrEnum
from typing import Self


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
    CODEC_ERROR = "codec_error"
    """The codec failed in a way its checks did not foresee (a codec bug): any other exception,
    turned into a `DecodeError` at the codec boundary (`Codec.decode`) with the original as cause."""


class IssueKind(StrEnum):
    """Why one value of an otherwise decoded frame was dropped or not understood.

    Used as the `reason` label of `decode_errors` for such values; never the reason of a refused
    frame, so a dashboard tells a lost field from a lost frame.
    """

    NON_FINITE = "non_finite"
    """A number that is NaN or infinite (an IEEE float register, a GPS float): the value is dropped."""
    UNDEFINED_VALUE = "undefined_value"
    """An enum or flag byte outside its documented values: reported as `unknown`, its flag dropped."""


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


class DecodeIssue(str):  # noqa: SLOT000 - str subtypes cannot have non-empty slots
    """A warning about one value of a frame that otherwise decoded ("keep what you can").

    It is a `str` (it travels in `DecodeResult.warnings` as `"<kind>: <detail>"`) that also carries
    its `kind`, so the pipeline counts it by codec and kind without parsing text.
    """

    kind: IssueKind

    def __new__(cls, kind: IssueKind, detail: str) -> Self:
        """Make the warning text `"<kind>: <detail>"` and remember the kind."""
        issue = super().__new__(cls, f"{kind.value}: {detail}")
        issue.kind = kind
        return issue


def internal_error(codec_id: str, err: Exception, raw: bytes) -> DecodeError:
    """The `codec_error` `DecodeError` for an exception a codec did not foresee (raise it `from err`)."""
    return DecodeError(codec_id, DecodeReason.CODEC_ERROR, f"{type(err).__name__}: {err}", raw)


class EncodeError(AdapterError):
    """Values given to an encoder cannot be represented in the wire format."""


class UnknownCodecError(AdapterError, KeyError):
    """No codec is registered under the requested id."""
