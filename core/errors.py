"""Errors raised by `core`."""

from __future__ import annotations


class CoreError(Exception):
    """Base of every error raised by `core`."""


class EnvelopeError(CoreError, ValueError):
    """An envelope could not be read: wrong version, missing field or wrong type.

    `field` is the dotted path of the offending field (`readings[3].ts`), or `""` for the document.
    """

    def __init__(self, field: str, reason: str) -> None:
        """Record which field was wrong and why."""
        self.field = field
        self.reason = reason
        where = f"{field}: " if field else ""
        super().__init__(f"{where}{reason}")
