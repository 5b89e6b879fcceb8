"""The errors a user can cause and fix; the CLI turns each into one red line and exit code 2.

Every stage raises these (or a plain ``ValueError`` for a bad argument) for bad input, instead of
letting a traceback reach the user. :data:`USER_ERRORS` is the tuple the CLI catches.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


class DataError(ValueError):
    """Malformed input; the message names the file, the line and what was expected."""

    def __init__(self, path: str | os.PathLike, line: int | None, expected: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {expected}")
        self.path = str(path)
        self.line = line


class DownloadError(ValueError):
    """A file could not be fetched, or its checksum does not match."""


class ManifestMismatch(RuntimeError):
    """The output folder holds a labeling job that differs from the one asked for."""


class ModelIndexMismatch(ValueError):
    """The index was built by another model than the one given; searching it would be meaningless."""


class PromptLogprobsUnavailable(ValueError):
    """The server answered, but without the log-probs of the prompt tokens."""


class TeacherServerError(ConnectionError):
    """The server could not be reached, or kept failing after every retry, or refused a request."""


class NonFiniteLoss(ArithmeticError):
    """A training loss came out NaN or infinite: training stops and no model is saved."""


class NonFiniteWeights(ArithmeticError):
    """The student's weights became NaN or infinite: training stops and no model is saved."""


class MissingExtra(ImportError):
    """An optional dependency group is not installed; the message names the ``pip install`` that adds it."""


def import_optional(module: str, install: str) -> ModuleType:
    """Import an optional dependency, or raise :class:`MissingExtra` with ``install`` (what to run) in its message."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(f"{install} ({err})") from err


USER_ERRORS: tuple[type[BaseException], ...] = (
    DataError,
    ManifestMismatch,
    ModelIndexMismatch,
    MissingExtra,
    ValueError,
    FileNotFoundError,
    ConnectionError,
    ArithmeticError,
)
"""What the CLI reports as one line: the errors above and the built-in ones the library raises for bad input."""
