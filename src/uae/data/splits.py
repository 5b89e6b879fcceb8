"""Deterministic train/dev/test splits by document, for sources that ship without them.

Splitting queries at random would put questions about the same paper, article or meeting on
both sides, and a student could learn the document rather than what makes a passage useful.
:func:`split_by_document` assigns whole documents to splits instead.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping

from uae.data.schema import Dataset, Qrels

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.6, "dev": 0.1, "test": 0.3}


def merged_qrels(dataset: Dataset) -> Qrels:
    """The judgements of every split in one table (a query judged in two splits keeps both sets)."""
    merged: Qrels = {}
    for qrels in dataset.qrels.values():
        for qid, judged in qrels.items():
            merged.setdefault(qid, {}).update(judged)
    return merged


def query_documents(dataset: Dataset) -> dict[str, str]:
    """The document each judged query belongs to.

    In order of preference: the query's own ``doc_id`` (its retrieval scope); the smallest
    ``doc_id`` among its relevant passages; its smallest relevant passage id (corpora without
    documents, where the gold passage plays the document's role); the query id.
    """
    documents: dict[str, str] = {}
    for qid, judged in merged_qrels(dataset).items():
        query = dataset.queries[qid]
        relevant = sorted(pid for pid, grade in judged.items() if grade > 0 and pid in dataset.corpus)
        doc_ids = sorted({d for pid in relevant if (d := dataset.corpus[pid].doc_id) is not None})
        documents[qid] = query.doc_id or (doc_ids[0] if doc_ids else relevant[0] if relevant else qid)
    return documents


def _allocate(n_docs: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Documents per split by largest remainder; every split gets one when there are enough."""
    exact = {name: n_docs * share for name, share in fractions.items()}
    counts = {name: math.floor(value) for name, value in exact.items()}
    by_remainder = sorted(fractions, key=lambda name: (-(exact[name] - counts[name]), list(fractions).index(name)))
    for name in by_remainder[: n_docs - sum(counts.values())]:
        counts[name] += 1
    if n_docs >= len(fractions):
        for name in fractions:
            if counts[name] == 0:
                counts[max(counts, key=counts.get)] -= 1
                counts[name] = 1
    return counts


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if not fractions or any(share <= 0 for share in fractions.values()):
        raise ValueError(f"expected positive split fractions, got {dict(fractions)}")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"expected split fractions summing to 1, got {dict(fractions)} (sum {sum(fractions.values())})")


def split_by_document(dataset: Dataset, fractions: Mapping[str, float] | None = None, seed: int = 13) -> Dataset:
    """Re-split every judged query of ``dataset`` so that no document is in two splits.

    Args:
        dataset: any dataset; its existing splits are merged first.
        fractions: share of the *documents* (see :func:`query_documents`) in each split, in
            the order the splits are filled; defaults to train 0.6, dev 0.1, test 0.3.
        seed: shuffle seed. The same dataset, fractions and seed give the same splits,
            whatever order the queries came in.

    Returns:
        A new dataset with the same corpus and queries and qrels under the new split names
        (a split can be empty when there are fewer documents than splits).

    Raises:
        ValueError: if the fractions are not positive or do not sum to 1.
    """
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    _check_fractions(fractions)
    documents = query_documents(dataset)
    shuffled = sorted(set(documents.values()))
    random.Random(seed).shuffle(shuffled)
    split_of: dict[str, str] = {}
    start = 0
    for name, count in _allocate(len(shuffled), fractions).items():
        split_of.update((doc, name) for doc in shuffled[start : start + count])
        start += count
    merged = merged_qrels(dataset)
    qrels: dict[str, Qrels] = {name: {} for name in fractions}
    for qid in sorted(merged):
        qrels[split_of[documents[qid]]][qid] = merged[qid]
    return dataclasses.replace(dataset, qrels=qrels)
