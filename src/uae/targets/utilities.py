"""From raw answer NLLs to utilities.

The utility of a passage ``d`` for a query ``q`` with gold answer ``a`` is the drop in the
teacher's NLL per answer token when ``d`` is put in the prompt::

    u(d) = nll(a | q) - nll(a | q, d)

aggregated over the query's answers by ``mean`` or ``max``. Queries whose NLL rows cannot give
utilities (no passage rows, a missing no-passage NLL, a non-finite NLL) are skipped and counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

import numpy as np

from uae.data.schema import SkipReport
from uae.data.tables import NO_PASSAGE, NLLRecord

NLLTable = dict[str, dict[str, dict[int, float]]]
"""``{query_id: {passage_id: {answer_index: nll}}}``."""


def group_nlls(records: Iterable[NLLRecord]) -> NLLTable:
    """Index NLL records by query, passage and answer.

    Args:
        records: NLL rows, with ``passage_id == NO_PASSAGE`` for the question-only prompt.

    Returns:
        ``{query_id: {passage_id: {answer_index: nll}}}``.

    Raises:
        ValueError: when two rows share a (query, passage, answer) key.
    """
    table: NLLTable = {}
    for record in records:
        answers = table.setdefault(record.query_id, {}).setdefault(record.passage_id, {})
        if record.answer_index in answers:
            raise ValueError(
                f"duplicate NLL row for query {record.query_id!r}, passage {record.passage_id!r}, "
                f"answer {record.answer_index}"
            )
        answers[record.answer_index] = float(record.nll)
    return table


def _query_problem(rows: dict[str, dict[int, float]]) -> str | None:
    """Why a query's NLL rows cannot give utilities, or ``None`` when they can."""
    baseline = rows.get(NO_PASSAGE, {})
    passages = [pid for pid in rows if pid != NO_PASSAGE]
    if not passages:
        return "no passage rows"
    if any(set(rows[pid]) - set(baseline) for pid in passages):
        return "missing no-passage NLL"
    if any(set(baseline) - set(rows[pid]) for pid in passages):
        return "passage missing an answer's NLL"
    if not all(np.isfinite(nll) for answers in rows.values() for nll in answers.values()):
        return "non-finite NLL"
    return None


def _aggregate(values: list[float], aggregate: Literal["mean", "max"]) -> float:
    if aggregate == "mean":
        return float(np.mean(values))
    if aggregate == "max":
        return float(np.max(values))
    raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")


def query_utilities(
    rows: dict[str, dict[int, float]], aggregate: Literal["mean", "max"] = "mean"
) -> dict[str, float]:
    """Utilities of one query's passages from its checked NLL rows.

    Args:
        rows: ``{passage_id: {answer_index: nll}}``, including the ``NO_PASSAGE`` row.
        aggregate: how to combine the per-answer utilities of a passage.

    Returns:
        ``{passage_id: utility}`` for every passage row.
    """
    baseline = rows[NO_PASSAGE]
    return {
        pid: _aggregate([baseline[a] - nll for a, nll in sorted(answers.items())], aggregate)
        for pid, answers in rows.items()
        if pid != NO_PASSAGE
    }


def utilities_from_nlls(
    records: Iterable[NLLRecord], aggregate: Literal["mean", "max"] = "mean"
) -> tuple[dict[str, dict[str, float]], SkipReport]:
    """Turn raw NLL rows into per-passage utilities, ``u(d) = nll(a|q) - nll(a|q,d)``.

    A query is skipped (and counted, with its reason) when it has no passage rows, when a
    passage answer lacks its no-passage NLL, when a passage lacks one of the answers the
    no-passage row has, or when an NLL is not finite.

    Args:
        records: NLL rows of any number of queries, in any order.
        aggregate: ``"mean"`` or ``"max"`` over a query's answers.

    Returns:
        ``({query_id: {passage_id: utility}}, skip report)``.

    Raises:
        ValueError: on duplicate (query, passage, answer) rows or an unknown ``aggregate``.
    """
    if aggregate not in ("mean", "max"):
        raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
    utilities: dict[str, dict[str, float]] = {}
    skipped = SkipReport()
    for query_id, rows in group_nlls(records).items():
        problem = _query_problem(rows)
        if problem is not None:
            skipped.add(problem, query_id)
            continue
        utilities[query_id] = query_utilities(rows, aggregate)
    return utilities, skipped


def utilities_from_labels(labels: str | os.PathLike, aggregate: Literal["mean", "max"] = "mean") -> tuple[dict[str, dict[str, float]], SkipReport]:
    """Utilities from a labels folder or an ``nlls.parquet`` file (see :func:`utilities_from_nlls`)."""
    from uae.labeling.jobs import read_labels

    return utilities_from_nlls(read_labels(labels), aggregate)


def pool_utilities(utilities: dict[str, dict[str, float]]) -> np.ndarray:
    """Every (query, passage) utility, flattened: the data of the utility histogram."""
    return np.array([u for per_query in utilities.values() for u in per_query.values()], dtype=np.float64)
