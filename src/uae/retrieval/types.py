"""Small value types shared by every retriever (BM25, dense, re-rankers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Hit(NamedTuple):
    """One retrieved passage and its score (higher is better)."""

    passage_id: str
    score: float


Run = dict[str, dict[str, float]]
"""``{query_id: {passage_id: score}}``; a higher score ranks a passage higher. The shape metrics and TREC export take."""


def hits_to_run(query_ids: Sequence[str], hits: Sequence[Sequence[Hit]]) -> Run:
    """Pair each query id with its hits."""
    return {qid: {h.passage_id: h.score for h in query_hits} for qid, query_hits in zip(query_ids, hits)}
