"""Your own data: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``),
plus an optional answers file when ``queries.jsonl`` has none.

The answers file is JSON lines, ``{"_id": <query id>, "answers": [str, ...]}`` (a single
string is accepted). Its answers are added to those already in ``queries.jsonl``. Queries
that end up without an answer are kept (they still serve similarity baselines) and are
counted again by every stage that needs an answer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from uae.data.beir import read_dataset
from uae.data.loaders.common import Loaded, Source, read_jsonl, unique_texts
from uae.data.schema import Query, SkipReport
from uae.errors import DataError


def read_answers(path: Path, queries: dict[str, Query]) -> dict[str, tuple[str, ...]]:
    """``{query_id: answers}`` from an answers file; unknown ids and malformed lines are errors."""
    answers: dict[str, tuple[str, ...]] = {}
    for number, record in read_jsonl(path):
        qid = record.get("_id")
        if not isinstance(qid, (str, int)) or str(qid) not in queries:
            raise DataError(path, number, f"expected '_id' of a query in queries.jsonl, found {qid!r}")
        texts = record.get("answers")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise DataError(path, number, f"expected 'answers' to be a list of strings, found {record.get('answers')!r}")
        answers[str(qid)] = unique_texts([*answers.get(str(qid), ()), *texts])
    return answers


def beir_root(folder: Path) -> Path:
    """``folder``, or its only sub-folder holding ``corpus.jsonl`` (an extracted BEIR zip)."""
    if (folder / "corpus.jsonl").is_file() or not folder.is_dir():
        return folder
    inner = [child for child in folder.iterdir() if (child / "corpus.jsonl").is_file()]
    return inner[0] if len(inner) == 1 else folder


def load(source: Source, *, answers: str | Path | None = None, name: str | None = None) -> Loaded:
    """Load a BEIR folder, adding answers from ``answers`` when given.

    Args:
        source: the folder with ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/``.
        answers: optional JSON-lines file of ``{"_id", "answers"}``.
        name: dataset name (default: the folder name).
    """
    if not isinstance(source, (str, Path)):
        raise DataError(str(source), None, "expected one BEIR folder")
    dataset = read_dataset(beir_root(Path(source)), name)
    if answers is not None:
        extra = read_answers(Path(answers), dataset.queries)
        queries = {
            qid: dataclasses.replace(q, answers=unique_texts([*q.answers, *extra.get(qid, ())]))
            for qid, q in dataset.queries.items()
        }
        dataset = dataclasses.replace(dataset, queries=queries)
    return Loaded(dataset, SkipReport())
