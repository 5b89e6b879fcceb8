"""Read and write the BEIR layout, extended with answers and an optional scope.

Layout of a dataset folder::

    corpus.jsonl     {"_id", "title"?, "text", "doc_id"?}
    queries.jsonl    {"_id", "text", "answers": [str, ...], "doc_id"?}
    qrels/<split>.tsv  query-id <TAB> corpus-id <TAB> score   (with a header line)

Every reader is strict: malformed input raises :class:`DataError` naming the file,
the line and what was expected. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uae.data.schema import Corpus, Dataset, Passage, Qrels, Query
from uae.errors import DataError
from uae.io import atomic_write_text


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for the non-blank lines of a UTF-8 file."""
    if not path.is_file():
        raise DataError(path, None, "file not found")
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(path, number, f"expected UTF-8 text, found byte {raw[err.start]:#04x}") from None
            if line.strip():
                yield number, line


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: Any, where: str = "") -> str | None:
    """Where in a parsed JSON value a string holds a lone UTF-16 surrogate (``"\\ud800"``), or ``None``.

    JSON escapes may spell such code points, and ``json.loads`` returns them, but they are not
    text: they cannot be written as UTF-8 and tokenizers reject them. The answer is a field path
    such as ``'text'`` or ``'answers'[1]``.
    """
    if isinstance(value, str):
        return (where or "value") if _LONE_SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}[{key!r}]" if where else repr(key)
            if _LONE_SURROGATE.search(key):
                return inner
            if (found := lone_surrogate(item, inner)) is not None:
                return found
    if isinstance(value, list):
        for position, item in enumerate(value):
            if (found := lone_surrogate(item, f"{where}[{position}]")) is not None:
                return found
    return None


def json_object(line: str, path: Path, number: int) -> dict[str, Any]:
    """Parse one JSON-lines record, or raise a :class:`DataError` naming the file and line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(path, number, f"expected one JSON object per line ({err.msg})") from None
    if not isinstance(record, dict):
        raise DataError(path, number, f"expected a JSON object, found {type(record).__name__}")
    if (field := lone_surrogate(record)) is not None:
        raise DataError(path, number, f"expected text in field {field}, found a lone UTF-16 surrogate escape (\\ud800-\\udfff)")
    return record


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in _read_lines(path):
        yield number, json_object(line, path, number)


def _required_str(record: dict[str, Any], key: str, path: Path, number: int) -> str:
    value = record.get(key)
    if value is None:
        raise DataError(path, number, f"expected field {key!r}")
    if isinstance(value, (int, float)) and key == "_id":
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise DataError(path, number, f"expected a non-empty string in field {key!r}, found {value!r}")
    return value


def _optional_scope(record: dict[str, Any], path: Path, number: int) -> str | None:
    value = record.get("doc_id")
    if value is None:
        return None
    if not isinstance(value, (str, int)) or str(value) == "":
        raise DataError(path, number, f"expected 'doc_id' to be a non-empty string, found {value!r}")
    return str(value)


def read_corpus(path: str | os.PathLike) -> Corpus:
    """Read ``corpus.jsonl``; each line needs ``_id`` and a non-empty ``text``."""
    path = Path(path)
    passages: list[Passage] = []
    seen: dict[str, int] = {}
    for number, record in _read_jsonl(path):
        pid = _required_str(record, "_id", path, number)
        if pid in seen:
            raise DataError(path, number, f"expected unique '_id', {pid!r} already on line {seen[pid]}")
        seen[pid] = number
        title = record.get("title") or ""
        if not isinstance(title, str):
            raise DataError(path, number, f"expected 'title' to be a string, found {title!r}")
        passages.append(
            Passage(
                id=pid,
                text=_required_str(record, "text", path, number),
                title=title,
                doc_id=_optional_scope(record, path, number),
            )
        )
    if not passages:
        raise DataError(path, None, "expected at least one passage")
    return Corpus(passages)


def _answers(record: dict[str, Any], path: Path, number: int) -> tuple[str, ...]:
    answers = record.get("answers", [])
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise DataError(path, number, f"expected 'answers' to be a list of strings, found {answers!r}")
    return tuple(answers)  # blank answers are kept: the labeling runner counts and skips them


def read_queries(path: str | os.PathLike) -> dict[str, Query]:
    """Read ``queries.jsonl``; ``answers`` may be absent (counted later as unusable, not dropped)."""
    path = Path(path)
    queries: dict[str, Query] = {}
    for number, record in _read_jsonl(path):
        qid = _required_str(record, "_id", path, number)
        if qid in queries:
            raise DataError(path, number, f"expected unique '_id', {qid!r} appears twice")
        queries[qid] = Query(
            id=qid,
            text=_required_str(record, "text", path, number),
            answers=_answers(record, path, number),
            doc_id=_optional_scope(record, path, number),
        )
    if not queries:
        raise DataError(path, None, "expected at least one query")
    return queries


def read_qrels(path: str | os.PathLike, corpus: Corpus, queries: dict[str, Query]) -> Qrels:
    """Read one ``qrels/<split>.tsv``; every id must exist and grades must be integers >= 0."""
    path = Path(path)
    qrels: Qrels = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, line in _read_lines(path):
        fields = line.rstrip("\r\n").split("\t")
        if number == 1 and fields[0] in ("query-id", "query_id", "qid"):
            continue
        if len(fields) == 4:  # TREC style: qid 0 pid grade
            fields = [fields[0], fields[2], fields[3]]
        if len(fields) != 3:
            raise DataError(path, number, f"expected 3 tab-separated fields (query-id, corpus-id, score), found {len(fields)}")
        qid, pid, grade_text = (f.strip() for f in fields)
        if qid not in queries:
            raise DataError(path, number, f"expected a query id from queries.jsonl, found unknown {qid!r}")
        if pid not in corpus:
            raise DataError(path, number, f"expected a passage id from corpus.jsonl, found unknown {pid!r}")
        grade = _grade(grade_text, path, number)
        judged = qrels.setdefault(qid, {})
        if pid in judged and judged[pid] != grade:
            raise DataError(path, number, f"expected one grade per (query, passage): {qid!r}, {pid!r} has grade {grade} here "
                                          f"and {judged[pid]} on line {first_line[qid, pid]}")
        first_line.setdefault((qid, pid), number)
        judged[pid] = grade
    return qrels


def _grade(text: str, path: Path, number: int) -> int:
    """A qrels score: an integer >= 0 (``2`` or ``2.0``); fractions, infinities and NaN are errors, never truncated."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(path, number, f"expected an integer score, found {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise DataError(path, number, f"expected an integer score (graded relevance 0, 1, 2, ...), found {text!r}")
    if value < 0:
        raise DataError(path, number, f"expected a score >= 0, found {text!r}")
    return int(value)


def read_dataset(folder: str | os.PathLike, name: str | None = None) -> Dataset:
    """Read a BEIR folder with answers: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/*.tsv``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, None, "expected a dataset folder with corpus.jsonl, queries.jsonl and qrels/")
    corpus = read_corpus(folder / "corpus.jsonl")
    queries = read_queries(folder / "queries.jsonl")
    qrel_files = sorted((folder / "qrels").glob("*.tsv"))
    if not qrel_files:
        raise DataError(folder / "qrels", None, "expected at least one qrels/<split>.tsv file")
    qrels = {f.stem: read_qrels(f, corpus, queries) for f in qrel_files}
    return Dataset(name=name or folder.name, corpus=corpus, queries=queries, qrels=qrels)


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def write_qrels(qrels: Qrels, path: str | os.PathLike) -> Path:
    """Write BEIR ``query-id corpus-id score`` TSV (with header) through a temporary name."""
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{p}\t{g}" for q, judged in qrels.items() for p, g in judged.items()]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_dataset(dataset: Dataset, folder: str | os.PathLike) -> Path:
    """Write ``dataset`` in the layout :func:`read_dataset` reads (atomically, file by file)."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    _write_jsonl(
        folder / "corpus.jsonl",
        [
            {"_id": p.id, "title": p.title, "text": p.text, **({"doc_id": p.doc_id} if p.doc_id else {})}
            for p in dataset.corpus
        ],
    )
    _write_jsonl(
        folder / "queries.jsonl",
        [
            {"_id": q.id, "text": q.text, "answers": list(q.answers), **({"doc_id": q.doc_id} if q.doc_id else {})}
            for q in dataset.queries.values()
        ],
    )
    for split, qrels in dataset.qrels.items():
        write_qrels(qrels, folder / "qrels" / f"{split}.tsv")
    return folder
