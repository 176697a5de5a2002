"""Errors of the gateway configuration: every problem with its file and line, reported at once."""

from __future__ import annotations

from collections.abc import Sequence

from core.issues import Issue

ConfigIssue = Issue
"""Former name of `core.issues.Issue`, the one type of a located problem in a file."""


class ConfigError(Exception):
    """A configuration (or a rule file it references) is invalid; carries every issue found."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        """Keep every issue; the message lists them one per line."""
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
