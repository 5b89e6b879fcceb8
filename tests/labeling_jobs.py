"""Tiny labeling jobs shared by the labeling tests: a corpus, queries with answers, pools, on disk if asked."""

from __future__ import annotations

from pathlib import Path

from uae.data.beir import write_dataset
from uae.data.schema import Corpus, Dataset, Passage, Query
from uae.data.tables import NO_PASSAGE, Candidate, Pools, write_pools

WORDS = "river stone harbour tower bridge market castle forest valley mill".split()


def make_job(n_queries: int = 12, pool_size: int = 3, n_passages: int = 16) -> tuple[Corpus, list[Query], Pools]:
    """Passages that mention ``valueN``; query ``qN`` asks for ``valueN``; pools of ``pool_size`` rotating passages."""
    corpus = Corpus(
        Passage(f"p{i:03d}", f"the {WORDS[i % 10]} of town {i} says value{i} and more about the {WORDS[(i + 3) % 10]}.")
        for i in range(n_passages)
    )
    queries = [Query(f"q{i:03d}", f"what does the {WORDS[i % 10]} of town {i} say?", (f"value{i % n_passages}",))
               for i in range(n_queries)]
    pools = {q.id: [Candidate(f"p{(i + j) % n_passages:03d}", 1.0 - j / 10, j == 0) for j in range(pool_size)]
             for i, q in enumerate(queries)}
    return corpus, queries, pools


def write_job(folder: Path, corpus: Corpus, queries: list[Query], pools: Pools) -> tuple[Path, Path]:
    """Write the job as a BEIR folder plus ``pools.parquet``; return both paths."""
    qrels = {"train": {q.id: {pools[q.id][0].passage_id: 1} for q in queries}}
    data = write_dataset(Dataset("tiny", corpus, {q.id: q for q in queries}, qrels), folder / "data")
    return data, write_pools(pools, folder / "pools.parquet")


def expected_keys(queries: list[Query], pools: Pools) -> set[tuple[str, str, int]]:
    """Every (query, passage or none, answer index) a complete labeling holds."""
    keys = set()
    for query in queries:
        for index, answer in enumerate(query.answers):
            if answer.strip():
                keys.add((query.id, NO_PASSAGE, index))
                keys.update((query.id, c.passage_id, index) for c in pools[query.id])
    return keys
