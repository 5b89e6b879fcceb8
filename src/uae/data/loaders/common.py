"""Pieces every dataset loader shares: reading source files, naming splits, building a Dataset.

A loader turns a dataset's official files into the one schema (:class:`~uae.data.schema.Dataset`)
and returns it with a :class:`~uae.data.schema.SkipReport` of everything it left out.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uae.data.beir import json_object, lone_surrogate
from uae.data.schema import Corpus, Dataset, Passage, Qrels, Query, SkipReport
from uae.errors import DataError

Source = str | os.PathLike | Sequence[str | os.PathLike]
"""A file, a folder holding a dataset's files, or a list of files."""


@dataclass
class Loaded:
    """A loader's result: the dataset and what was left out of it, with reasons."""

    dataset: Dataset
    skipped: SkipReport


def source_files(source: Source, patterns: Sequence[str], dataset: str) -> list[Path]:
    """Resolve ``source`` to the files to read.

    Args:
        source: one file, a list of files, or a folder searched with ``patterns``.
        patterns: glob patterns of the dataset's files inside a folder (searched recursively,
            so an extracted archive with a top folder is found too).
        dataset: name used in error messages.

    Raises:
        DataError: when a file is missing or a folder holds none of the expected files.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            found = sorted({f for pattern in patterns for f in path.rglob(pattern) if f.is_file()})
            if not found:
                raise DataError(path, None, f"expected {dataset} files matching {', '.join(patterns)}")
            return found
        sources = [path]
    else:
        sources = [Path(s) for s in source]
    if not sources:
        raise DataError("<no files>", None, f"expected at least one {dataset} file")
    for path in sources:
        if not path.is_file():
            raise DataError(path, None, f"expected a {dataset} file (not found)")
    return sources


def open_text(path: Path):
    """Open a UTF-8 text file for reading, transparently gunzipping ``*.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_json(path: Path) -> Any:
    """Parse one JSON document; malformed input is a :class:`DataError` naming the file and line."""
    try:
        with open_text(path) as handle:
            document = json.load(handle)
        if (where := lone_surrogate(document)) is not None:
            raise DataError(path, None, f"expected text at {where}, found a lone UTF-16 surrogate escape (\\ud800-\\udfff)")
        return document
    except json.JSONDecodeError as err:
        raise DataError(path, err.lineno, f"expected a JSON document ({err.msg})") from None
    except UnicodeDecodeError:
        raise DataError(path, None, "expected UTF-8 text") from None
    except (OSError, EOFError) as err:  # e.g. a truncated or fake .gz
        raise DataError(path, None, f"expected a readable file ({err})") from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file (``.gz`` too)."""
    number = 0
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, json_object(line, path, number)
    except UnicodeDecodeError:
        raise DataError(path, number + 1, "expected UTF-8 text") from None
    except (OSError, EOFError) as err:
        raise DataError(path, number + 1, f"expected a readable file ({err})") from None




_SPLIT_WORDS = (("train", "train"), ("validation", "dev"), ("val", "dev"), ("dev", "dev"), ("test", "test"))


def split_from_name(path: Path, default: str = "all") -> str:
    """The split a file holds, from the words of its name (``qasper-dev-v0.3.json`` -> ``dev``).

    ``val`` and ``validation`` are called ``dev``; a name without a split word gives ``default``.
    """
    words = set(re.split(r"[^a-z]+", path.name.lower()))
    for word, split in _SPLIT_WORDS:
        if word in words:
            return split
    return default


def field(record: Any, key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    """``record[key]`` checked against ``kind``; otherwise a :class:`DataError` naming the record."""
    if not isinstance(record, dict) or key not in record:
        raise DataError(path, None, f"{where}: expected field {key!r}")
    value = record[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(path, None, f"{where}: expected {key!r} to be {names}, found {type(value).__name__}")
    return value


def unique_texts(texts: Iterable[str]) -> tuple[str, ...]:
    """Non-blank texts, stripped, first occurrence kept, in order."""
    seen: dict[str, None] = {}
    for text in texts:
        if text and text.strip():
            seen.setdefault(text.strip(), None)
    return tuple(seen)


class DatasetBuilder:
    """Collects passages, queries and qrels, refusing duplicates, and counts what is skipped."""

    def __init__(self, name: str):
        self.name = name
        self.passages: dict[str, Passage] = {}
        self.queries: dict[str, Query] = {}
        self.qrels: dict[str, Qrels] = {}
        self.skipped = SkipReport()
        self._origin: dict[str, str] = {}

    def add_passage(self, passage: Passage, path: Path, where: str) -> None:
        """Add ``passage``; the same id twice is a :class:`DataError` unless it is the same passage."""
        if passage.id in self.passages:
            if self.passages[passage.id] == passage:
                return
            raise DataError(path, None, f"{where}: expected a unique passage id, {passage.id!r} already came from {self._origin[passage.id]}")
        self.passages[passage.id] = passage
        self._origin[passage.id] = f"{path} ({where})"

    def add_query(self, query: Query, split: str, relevant: Iterable[str], path: Path, where: str) -> None:
        """Add ``query`` to ``split`` with grade 1 on each ``relevant`` passage id."""
        if query.id in self.queries:
            raise DataError(path, None, f"{where}: expected a unique query id, {query.id!r} already came from {self._origin['q:' + query.id]}")
        judged = {pid: 1 for pid in relevant}
        missing = [pid for pid in judged if pid not in self.passages]
        if missing:
            raise DataError(path, None, f"{where}: relevant passage {missing[0]!r} is not in the corpus")
        self.queries[query.id] = query
        self._origin["q:" + query.id] = f"{path} ({where})"
        self.qrels.setdefault(split, {})[query.id] = judged

    def skip(self, reason: str, item_id: str) -> None:
        """Count one item left out, with its reason."""
        self.skipped.add(reason, item_id)

    def build(self, path: Path | str = "<source>") -> Loaded:
        """The collected dataset; a source that yields no usable query is a :class:`DataError`."""
        if not self.passages:
            raise DataError(path, None, f"expected at least one {self.name} passage")
        if not self.queries:
            raise DataError(path, None, f"expected at least one usable {self.name} question; skipped: {self.skipped.to_dict()}")
        dataset = Dataset(name=self.name, corpus=Corpus(self.passages.values()), queries=self.queries, qrels=self.qrels)
        return Loaded(dataset, self.skipped)
