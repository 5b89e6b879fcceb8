"""The one schema every stage shares: passages, queries with answers, graded qrels.

A :class:`Dataset` is what loaders produce and what mining, labeling, training and
evaluation consume. Candidate pools and answer NLLs are tables (see ``tables.py``).

``doc_id`` is the optional retrieval scope: a query with a ``doc_id`` is searched only
among the passages that carry the same ``doc_id`` (retrieval inside one document, as in
QASPER); a query without one searches the whole corpus.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from uae.errors import UnknownSplit

Qrels = dict[str, dict[str, int]]
"""``{query_id: {passage_id: grade}}``; grades are non-negative integers, 0 = judged irrelevant."""


@dataclass(frozen=True)
class Passage:
    """One retrievable unit of text."""

    id: str
    text: str
    title: str = ""
    doc_id: str | None = None

    @property
    def full_text(self) -> str:
        """Title and text as the encoders and teachers see them."""
        return f"{self.title}. {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Query:
    """A question with its gold answers (several annotators may give several)."""

    id: str
    text: str
    answers: tuple[str, ...] = ()
    doc_id: str | None = None


class Corpus:
    """Passages in a fixed order, addressable by id and by row number."""

    def __init__(self, passages: Iterable[Passage]):
        self.passages: list[Passage] = list(passages)
        self.row_of: dict[str, int] = {}
        for row, passage in enumerate(self.passages):
            if passage.id in self.row_of:
                raise ValueError(f"duplicate passage id {passage.id!r} in corpus")
            self.row_of[passage.id] = row
        self._rows_by_doc: dict[str, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.passages)

    def __iter__(self) -> Iterator[Passage]:
        return iter(self.passages)

    def __contains__(self, passage_id: object) -> bool:
        return passage_id in self.row_of

    def __getitem__(self, passage_id: str) -> Passage:
        return self.passages[self.row_of[passage_id]]

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.passages]

    @property
    def texts(self) -> list[str]:
        return [p.full_text for p in self.passages]

    def rows_in_scope(self, doc_id: str | None) -> list[int] | None:
        """Row numbers of the passages of ``doc_id``; ``None`` means the whole corpus."""
        if doc_id is None:
            return None
        if self._rows_by_doc is None:
            self._rows_by_doc = {}
            for row, passage in enumerate(self.passages):
                if passage.doc_id is not None:
                    self._rows_by_doc.setdefault(passage.doc_id, []).append(row)
        return self._rows_by_doc.get(doc_id, [])


@dataclass
class SkipReport:
    """What a stage left out and why; printed, stored, never silent."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, item_id: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < 5:
            shown.append(item_id)

    def merge(self, other: SkipReport) -> None:
        for reason, count in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + count
            shown = self.examples.setdefault(reason, [])
            shown.extend(other.examples.get(reason, [])[: 5 - len(shown)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        return [
            f"skipped {count} ({reason}), e.g. {', '.join(self.examples.get(reason, []))}"
            for reason, count in sorted(self.counts.items())
        ]

    def to_dict(self) -> dict[str, int]:
        return dict(self.counts)


@dataclass
class Dataset:
    """A corpus, its queries and the graded relevance judgements of each split."""

    name: str
    corpus: Corpus
    queries: dict[str, Query]
    qrels: dict[str, Qrels]
    """``{split: qrels}``, e.g. ``{"train": ..., "test": ...}``."""

    def split_queries(self, split: str) -> list[Query]:
        """Queries judged in ``split``, in qrels order."""
        if split not in self.qrels:
            raise UnknownSplit(f"dataset {self.name!r} has no split {split!r} (no qrels/{split}.tsv); expected one of {sorted(self.qrels)}")
        return [self.queries[qid] for qid in self.qrels[split]]

    def usable_queries(self, split: str, evidence: bool = True) -> tuple[list[Query], SkipReport]:
        """Queries of ``split`` that have an answer and (with ``evidence``) a relevant passage, and a count of the rest."""
        skipped = SkipReport()
        usable = []
        for query in self.split_queries(split):
            if not any(a.strip() for a in query.answers):
                skipped.add("no gold answer", query.id)
            elif evidence and not any(grade > 0 for grade in self.qrels[split][query.id].values()):
                skipped.add("no relevant passage", query.id)
            else:
                usable.append(query)
        return usable, skipped

    def training_queries(self, split: str, evidence: bool = True) -> tuple[list[Query], SkipReport]:
        """:meth:`usable_queries` for a stage that needs at least one (mining, training); none is an error that says why.

        Raises:
            ValueError: ``split`` has no usable query; the message gives the counts of what was left out.
        """
        queries, skipped = self.usable_queries(split, evidence)
        if not queries:
            judged = len(self.qrels[split])
            why = "; ".join(skipped.lines()) if skipped.total else f"qrels/{split}.tsv judges no query"
            raise ValueError(f"dataset {self.name!r}, split {split!r}: no usable queries ({judged} judged; {why}); expected "
                             f"queries with an answer{' and a relevant passage (grade > 0)' if evidence else ''}")
        return queries, skipped

    def without_evidence(self) -> Dataset:
        """This dataset with every relevance judgement removed; which queries belong to which split is kept.

        What a team that has questions and answers but no evidence labels would hand over: the
        training stages of ``uae run`` with ``evidence: false`` see only this.
        """
        qrels = {split: {qid: {} for qid in judged} for split, judged in self.qrels.items()}
        return Dataset(self.name, self.corpus, self.queries, qrels)
