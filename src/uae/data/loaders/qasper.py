"""QASPER (Dasigi et al., NAACL 2021): questions about NLP papers, answered from the paper.

Reads the official JSON (``qasper-{train,dev,test}-v0.3.json``: ``{paper_id: {title, abstract,
full_text: [{section_name, paragraphs}], qas: [...]}}``) and the Hugging Face ``allenai/qasper``
layout as JSON lines (one paper per line, columns as lists: ``full_text: {section_name: [...],
paragraphs: [[...]]}``, ``qas: {question: [...], question_id: [...], answers: [{answer: [...]}]}``).

Mapping to the schema:

- **passages**: the paper's paragraphs (the abstract first, as section ``Abstract``), titled
  by their section; ``doc_id`` = paper id. Empty paragraphs are counted and left out.
- **queries**: scoped to their paper (``doc_id`` = paper id) unless ``scoped=False``.
- **answers**: one text per annotator, as the official evaluator builds it: extractive spans
  joined with ", ", else the free-form answer, else ``"yes"`` / ``"no"``.
- **qrels**: grade 1 on every paragraph any annotator gave as evidence (union).
- **figure/table evidence**: evidence strings starting ``FLOAT SELECTED`` are captions of
  figures and tables, which are not passages. Each such item is dropped and counted; the
  question stays if it still has text evidence, and is skipped (counted) if it had only
  figure/table evidence. Evidence that matches no paragraph (e.g. a section heading) is
  dropped and counted the same way.
- **unanswerable**: an annotation marked unanswerable is dropped and counted; a question
  whose every annotation is unanswerable is skipped and counted.

Splits come from the file names (train / dev / test); ``split=`` overrides.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uae.data.loaders.common import (
    DatasetBuilder,
    Loaded,
    Source,
    field,
    read_json,
    read_jsonl,
    source_files,
    split_from_name,
    unique_texts,
)
from uae.data.schema import Passage, Query
from uae.errors import DataError

PATTERNS = ("qasper*.json", "qasper*.jsonl", "qasper*.jsonl.gz")
FLOAT_PREFIX = "FLOAT SELECTED"


def _papers_official(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, None, "expected the official QASPER layout: a JSON object {paper_id: paper}")
    yield from data.items()


def _papers_hf(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Hugging Face rows, converted to the official paper layout."""
    for number, row in read_jsonl(path):
        where = f"line {number}"
        paper_id = str(field(row, "id", (str, int), path, where))
        text = field(row, "full_text", dict, path, where)
        qas = field(row, "qas", dict, path, where)
        columns = [len(text.get("section_name", [])), len(text.get("paragraphs", []))]
        columns += [len(qas.get("question", [])), len(qas.get("question_id", [])), len(qas.get("answers", []))]
        if columns[0] != columns[1] or len(set(columns[2:])) != 1:
            raise DataError(path, number, "expected equally long columns in full_text (section_name, paragraphs) "
                                          f"and in qas (question, question_id, answers), found {columns}")
        sections = [{"section_name": s, "paragraphs": p} for s, p in zip(text.get("section_name", []), text.get("paragraphs", []))]
        questions = [
            {"question": q, "question_id": qid, "answers": [{"answer": a} for a in field(answers, "answer", list, path, f"{where}, question {qid}")]}
            for q, qid, answers in zip(qas.get("question", []), qas.get("question_id", []), qas.get("answers", []))
        ]
        yield paper_id, {"title": row.get("title", ""), "abstract": row.get("abstract", ""), "full_text": sections, "qas": questions}


def _paragraphs(paper: dict[str, Any], path: Path, where: str, include_abstract: bool) -> Iterator[tuple[int, str, str]]:
    """``(number, section_name, paragraph)`` in reading order; the abstract is number 0 (even when left out)."""
    if include_abstract and isinstance(paper.get("abstract"), str):
        yield 0, "Abstract", paper["abstract"]
    number = 0
    for index, section in enumerate(field(paper, "full_text", list, path, where)):
        name = field(section, "section_name", (str, type(None)), path, f"{where}, section {index}") or ""
        for paragraph in field(section, "paragraphs", list, path, f"{where}, section {name!r}"):
            if not isinstance(paragraph, str):
                raise DataError(path, None, f"{where}, section {name!r}: expected paragraphs to be strings, found {paragraph!r}")
            number += 1
            yield number, name, paragraph


def answer_text(answer: dict[str, Any]) -> str:
    """One annotation's answer as text (``""`` when unanswerable or empty).

    Extractive spans joined with ", " take precedence, then the free-form answer, then yes/no,
    the order of the official QASPER evaluator.
    """
    if answer.get("unanswerable"):
        return ""
    spans = [s.strip() for s in answer.get("extractive_spans") or [] if isinstance(s, str) and s.strip()]
    if spans:
        return ", ".join(spans)
    free_form = answer.get("free_form_answer") or ""
    if free_form.strip():
        return free_form.strip()
    if answer.get("yes_no") is True:
        return "yes"
    if answer.get("yes_no") is False:
        return "no"
    return ""


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class _Paper:
    """A paper's passages, with evidence strings looked up by (whitespace-normalised) text."""

    def __init__(self, paper_id: str, builder: DatasetBuilder, paper: dict[str, Any], path: Path, include_abstract: bool):
        self.by_text: dict[str, list[str]] = {}
        where = f"paper {paper_id}"
        for number, section, paragraph in _paragraphs(paper, path, where, include_abstract):
            pid = f"{paper_id}#{number}"
            if not paragraph.strip():
                builder.skip("passage: empty paragraph", pid)
                continue
            builder.add_passage(Passage(pid, paragraph.strip(), section, paper_id), path, where)
            self.by_text.setdefault(_normalise(paragraph), []).append(pid)

    def evidence(self, texts: list[str], qid: str, builder: DatasetBuilder) -> tuple[list[str], int]:
        """Passage ids of the evidence, and how many evidence items were figures/tables."""
        found: dict[str, None] = {}
        floats = 0
        for text in texts:
            if text.strip().startswith(FLOAT_PREFIX):
                builder.skip("evidence item: figure/table caption (dropped)", qid)
                floats += 1
            elif _normalise(text) in self.by_text:
                found.update(dict.fromkeys(self.by_text[_normalise(text)]))
            elif text.strip():
                builder.skip("evidence item: not a paragraph of the paper (dropped)", qid)
        return list(found), floats


def _question(builder: DatasetBuilder, paper: _Paper, paper_id: str, qa: dict[str, Any], split: str, scoped: bool, path: Path) -> None:
    where = f"paper {paper_id}"
    qid = str(field(qa, "question_id", (str, int), path, where))
    where = f"{where}, question {qid}"
    text = field(qa, "question", str, path, where).strip()
    if qid in builder.queries:
        number = 2
        while f"{qid}~{number}" in builder.queries:
            number += 1
        builder.skip("question: duplicate question_id (kept, renamed with ~N)", qid)
        qid = f"{qid}~{number}"
    answers, evidence = [], []
    for annotation in field(qa, "answers", list, path, where):
        answer = field(annotation, "answer", dict, path, where)
        if answer.get("unanswerable"):
            builder.skip("annotation: unanswerable (dropped)", qid)
            continue
        answers.append(answer_text(answer))
        if not answers[-1]:
            builder.skip("annotation: no answer text (dropped)", qid)
        evidence.extend(e for e in answer.get("evidence") or [] if isinstance(e, str))
    answers = unique_texts(answers)
    if not answers:
        builder.skip("question: unanswerable", qid)
        return
    relevant, floats = paper.evidence(evidence, qid, builder)
    if not relevant:
        reason = "question: only figure/table evidence" if floats else "question: no text evidence"
        builder.skip(reason, qid)
        return
    builder.add_query(Query(qid, text, answers, paper_id if scoped else None), split, relevant, path, where)


def load(source: Source, *, scoped: bool = True, include_abstract: bool = True, split: str | None = None) -> Loaded:
    """Load QASPER from official JSON or Hugging Face JSON-lines files.

    Args:
        source: a file, a list of files, or a folder with ``qasper*.json`` / ``qasper*.jsonl``.
        scoped: retrieve inside the question's paper (the QASPER setting) rather than the corpus.
        include_abstract: make the abstract a passage of its paper.
        split: put every question in this split instead of the one named by its file.
    """
    builder = DatasetBuilder("qasper")
    files = source_files(source, PATTERNS, "QASPER")
    origin: dict[str, Path] = {}
    for path in files:
        reader = _papers_hf if ".jsonl" in path.suffixes else _papers_official
        for paper_id, paper in reader(path):
            if not isinstance(paper, dict):
                raise DataError(path, None, f"paper {paper_id}: expected an object, found {type(paper).__name__}")
            if paper_id in origin:
                raise DataError(path, None, f"paper {paper_id}: expected each paper once, it is also in {origin[paper_id]} (pass one file)")
            origin[paper_id] = path
            doc = _Paper(paper_id, builder, paper, path, include_abstract)
            for qa in field(paper, "qas", list, path, f"paper {paper_id}"):
                _question(builder, doc, paper_id, qa, split or split_from_name(path), scoped, path)
    return builder.build(files[0])
