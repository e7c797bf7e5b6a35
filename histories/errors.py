"""The one error type for a history that cannot be read or does not make sense."""

from __future__ import annotations


class HistoryFormatError(Exception):
    """A history file is malformed or inconsistent.

    Always names the file and (when known) the 1-based line, so the CLI can print one actionable line.
    """

    def __init__(self, file: str | None, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<history>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.message}"
