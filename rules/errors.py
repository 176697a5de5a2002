"""Errors raised by `rules`."""

from __future__ import annotations

from collections.abc import Sequence


class RuleError(Exception):
    """Base of every error raised by `rules`."""


class RuleFileError(RuleError, ValueError):
    """One or more rule files are invalid; nothing was loaded.

    `errors` holds every problem found, each as `file:line: message`, in file order.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        """Keep every error; the message lists them one per line."""
        self.errors = tuple(errors)
        super().__init__("\n".join(self.errors))


class SilenceError(RuleError, ValueError):
    """A silence was refused: no reason, no expiry, or an expiry in the past."""


class SnapshotError(RuleError, ValueError):
    """A state snapshot could not be read back."""
