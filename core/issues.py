"""One problem found in a file a person wrote (configuration, rules, scenario), located by file:line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem in a file: its name, the 1-based line (0 for the file as a whole) and what is wrong."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"
