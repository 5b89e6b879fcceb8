"""The errors a user can cause and fix; the CLI turns each into one red line and exit code 2.

Every stage raises these (or a plain ``ValueError`` for a bad argument) for bad input, instead of
letting a traceback reach the user. :data:`USER_ERRORS` is the tuple the CLI catches.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from types import ModuleType


class DataError(ValueError):
    """Malformed input; the message names the file, the line and what was expected."""

    def __init__(self, path: str | os.PathLike, line: int | None, expected: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {expected}")
        self.path = str(path)
        self.line = line


class UnknownSplit(ValueError):
    """A qrels split was asked for that the dataset does not have; the message lists the ones it has."""


class ModelNotFound(FileNotFoundError):
    """A model (encoder or teacher) is neither a local folder nor a loadable Hugging Face model id."""


_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def check_model_reference(name_or_path: str, what: str = "model") -> None:
    """Refuse, with one line, a model that is neither an existing path nor shaped like a hub id (``owner/name``).

    Without this, transformers answers a missing folder with a validation error about repository
    names or a long ``OSError``; a path the user meant (``/models/x``, ``./out/model``) is named as such.

    Raises:
        ModelNotFound: ``name_or_path`` does not exist and cannot be a Hugging Face model id.
    """
    if Path(name_or_path).expanduser().exists():
        return
    if not _REPO_ID.match(name_or_path) or ".." in name_or_path or name_or_path.startswith((".", "~")):
        raise ModelNotFound(f"{what} {name_or_path!r}: no such file or folder (and not a Hugging Face model id owner/name)")


def model_load_error(name_or_path: str, err: OSError, what: str = "model") -> ModelNotFound:
    """One line for an ``OSError`` of ``from_pretrained`` (a missing hub model, a folder without weights)."""
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    return ModelNotFound(f"{what} {name_or_path!r} could not be loaded: {first}")


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


def validation_problems(err: Exception) -> str:
    """``field.sub: message; ...`` for a pydantic ``ValidationError`` (one line, every problem)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in err.errors())


def one_line(err: BaseException, limit: int = 2000) -> str:
    """The message of a user error as one line: a pydantic error lists its fields, a multi-line message is joined."""
    if callable(getattr(err, "errors", None)) and hasattr(err, "title"):  # pydantic.ValidationError, without importing it
        return f"invalid {err.title} ({validation_problems(err)})"
    text = " | ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


class ContextOverflow(ValueError):
    """The server refused a prompt as longer than its context; the generator has re-measured its tokens, so refit and retry."""
