"""Candidate pools: BM25 and the base encoder, fused by reciprocal rank, gold always included.

The pool is what the teacher scores and what the student learns to order, so it must
hold both the passages that look like the question (the semantic distractors) and the
ones that help; lexical and dense rankings fail differently, which is why both are fused.
"""

from __future__ import annotations

from collections.abc import Sequence

from uae.data.schema import Dataset, Query
from uae.data.tables import Candidate, Pools
from uae.retrieval.bm25 import BM25Index
from uae.retrieval.retriever import Retriever
from uae.retrieval.types import Hit


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: int = 60) -> list[Hit]:
    """Fuse rankings by ``sum 1 / (k + rank)`` (Cormack et al., 2009); ties keep first-seen order."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.passage_id] = fused.get(hit.passage_id, 0.0) + 1.0 / (k + rank)
    return [Hit(pid, score) for pid, score in sorted(fused.items(), key=lambda item: -item[1])]


def fuse_runs(runs: Sequence[dict[str, dict[str, float]]], depth: int, k: int = 60) -> dict[str, dict[str, float]]:
    """RRF of whole runs (``{qid: {pid: score}}``), query by query; each keeps its top ``depth``.

    A run's ranking is its scores, best first, ties to the larger id (as trec_eval breaks them).
    """
    fused = {}
    for qid in runs[0]:
        rankings = [[Hit(pid, score) for pid, score in sorted(run.get(qid, {}).items(), key=lambda item: (item[1], item[0]),
                                                              reverse=True)] for run in runs]
        fused[qid] = {hit.passage_id: hit.score for hit in reciprocal_rank_fusion(rankings, k)[:depth]}
    return fused


def build_pool(fused: Sequence[Hit], gold: Sequence[str], size: int, include_gold: bool = True) -> list[Candidate]:
    """The top ``size`` fused passages; missing gold passages replace the lowest-ranked others.

    A gold passage that fusion did not rank gets the pool's lowest score, so the pool
    order never hints at which passage is gold.
    """
    gold_set = set(gold)
    chosen = list(fused[:size])
    present = {hit.passage_id for hit in chosen}
    missing = [pid for pid in dict.fromkeys(gold) if pid not in present] if include_gold else []
    overflow = len(chosen) + len(missing) - size
    if overflow > 0:
        non_gold = [hit for hit in chosen if hit.passage_id not in gold_set]
        dropped = {hit.passage_id for hit in non_gold[len(non_gold) - min(overflow, len(non_gold)) :]}
        chosen = [hit for hit in chosen if hit.passage_id not in dropped]
    floor = min((hit.score for hit in chosen), default=0.0)
    chosen += [Hit(pid, floor) for pid in missing[: max(size - len(chosen), 0)]]
    return [Candidate(hit.passage_id, float(hit.score), hit.passage_id in gold_set) for hit in chosen]


def mine_pools(
    dataset: Dataset,
    queries: Sequence[Query],
    retriever: Retriever,
    size: int = 16,
    depth: int = 100,
    include_gold: bool = True,
    rrf_k: int = 60,
    bm25: BM25Index | None = None,
    progress: bool = True,
) -> Pools:
    """Pools of ``size`` candidates per query from BM25 and ``retriever``, fused by RRF.

    Args:
        dataset: Supplies the corpus and the gold evidence (all splits' qrels).
        queries: The queries to mine for.
        retriever: The base encoder and its index over ``dataset.corpus``.
        size: Passages per pool.
        depth: How deep each ranking is read before fusion.
        include_gold: Put every gold passage in the pool (the DESIGN default); without it the
            pools are what a user without evidence labels would have.
        rrf_k: The RRF constant.
        bm25: A prebuilt BM25 index (built here if ``None``).
        progress: Show progress bars.
    """
    bm25 = bm25 or BM25Index(dataset.corpus)
    texts = [q.text for q in queries]
    scopes = [q.doc_id for q in queries]
    lexical = bm25.search(texts, depth, scopes)
    dense = retriever.search(texts, depth, scopes, progress=progress)
    gold_of = _gold_passages(dataset)
    return {
        query.id: build_pool(reciprocal_rank_fusion([lex, den], rrf_k), gold_of.get(query.id, []), size, include_gold)
        for query, lex, den in zip(queries, lexical, dense)
    }


def _gold_passages(dataset: Dataset) -> dict[str, list[str]]:
    gold: dict[str, list[str]] = {}
    for qrels in dataset.qrels.values():
        for qid, judged in qrels.items():
            for pid, grade in judged.items():
                if grade > 0 and pid not in gold.setdefault(qid, []):
                    gold[qid].append(pid)
    return gold
