"""Errors raised by `core`."""

from __future__ import annotations

from enum import StrEnum


class CoreError(Exception):
    """Base of every error raised by `core`."""


class EnvelopeErrorCode(StrEnum):
    """Why an envelope (or one of its records) was refused, for counting refusals by reason.

    The values are part of the envelope format (docs/envelope.md) and never change meaning.
    """

    BAD_JSON = "bad_json"
    """Not UTF-8 JSON text: a syntax error, invalid UTF-8, a byte order mark, a lone surrogate."""
    TOO_LARGE = "too_large"
    """Over a size limit: bytes of the envelope, records, string length, integer magnitude."""
    TOO_DEEP = "too_deep"
    """Arrays and objects nested deeper than the format allows."""
    NON_FINITE = "non_finite"
    """A number that is NaN or infinite (`NaN`, `Infinity`, `1e400`)."""
    UNSUPPORTED_VERSION = "unsupported_version"
    """A `schema_version` this reader does not know."""
    SCHEMA = "schema"
    """Valid JSON that is not an envelope: a missing field, a wrong type, an unknown name."""


class EnvelopeError(CoreError, ValueError):
    """An envelope could not be read, or a record could not be written into one.

    `field` is the dotted path of the offending field (`readings[3].ts`), or `""` for the document;
    `reason` says what is wrong in words; `code` says it for machines (`EnvelopeErrorCode`).
    """

    def __init__(
        self, field: str, reason: str, code: EnvelopeErrorCode = EnvelopeErrorCode.SCHEMA
    ) -> None:
        """Record which field was wrong, why, and the kind of refusal."""
        self.field = field
        self.reason = reason
        self.code = code
        where = f"{field}: " if field else ""
        super().__init__(f"{where}{reason}")
