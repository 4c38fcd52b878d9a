"""Exceptions raised on bad input.

Every error that a user can cause (a malformed file, a bad CLI flag, a wrong API
argument) is a :class:`RecsysError`. The CLI prints its message on one line and
exits with status 2; library callers can catch the specific subclasses.
"""

from __future__ import annotations

from pathlib import Path


class RecsysError(Exception):
    """Base class of every user-facing error of the package."""


class KerasVersionError(RecsysError, ImportError):
    """TensorFlow was imported with Keras 3 before ``tfrs_recsys``."""


class ConfigError(RecsysError, ValueError):
    """A configuration value or command-line argument is invalid."""


class DataValidationError(RecsysError, ValueError):
    """An input file or table does not have the expected content.

    The message names the file, the line (1-based, the header is line 1) and the
    column when they are known, then says what was expected and what was found.

    Attributes:
        file: The offending file, if the data came from a file.
        line: 1-based line number in that file (header = line 1), if known.
        column: The offending column, if known.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        where = []
        if self.file is not None:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


class NothingToEvaluateError(DataValidationError):
    """No user has a holdout positive that is not also a train positive."""


class DatasetNotFoundError(RecsysError, FileNotFoundError):
    """A dataset directory or one of its required files does not exist."""
