"""Errors of the gateway configuration: every problem with its file and line, reported at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration file, located by file and 1-based line (0 when unknown)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration (or a rule file it references) is invalid; carries every issue found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        """Keep every issue; the message lists them one per line."""
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
