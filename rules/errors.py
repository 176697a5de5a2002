"""Errors raised by `rules`."""

from __future__ import annotations

from collections.abc import Sequence

from core.issues import Issue


class RuleError(Exception):
    """Base of every error raised by `rules`."""


class RuleFileError(RuleError, ValueError):
    """One or more rule files (or rule test files) are invalid; nothing was loaded.

    `issues` holds every problem found, in file order; `errors` the same as `file:line: message`
    text (`file: message` for a file that could not be read at all, as `core.issues.Issue` prints).
    """

    def __init__(self, issues: Sequence[Issue]) -> None:
        """Keep every issue; the message lists them one per line."""
        self.issues = tuple(issues)
        self.errors = tuple(str(i) for i in self.issues)
        super().__init__("\n".join(self.errors))


class SilenceError(RuleError, ValueError):
    """A silence was refused: no reason, no expiry, or an expiry in the past."""


class SnapshotError(RuleError, ValueError):
    """A state snapshot could not be read back."""
