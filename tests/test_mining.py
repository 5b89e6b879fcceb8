"""Pool construction: reciprocal rank fusion and the gold-always-in rule."""

from __future__ import annotations

from uae.data.schema import Corpus, Passage
from uae.retrieval.bm25 import BM25Index
from uae.retrieval.mining import build_pool, reciprocal_rank_fusion
from uae.retrieval.types import Hit


def test_rrf_rewards_agreement():
    lexical = [Hit("a", 9.0), Hit("b", 8.0), Hit("c", 7.0)]
    dense = [Hit("b", 0.9), Hit("c", 0.8), Hit("d", 0.7)]
    fused = reciprocal_rank_fusion([lexical, dense], k=60)
    assert [h.passage_id for h in fused] == ["b", "c", "a", "d"]
    assert abs(fused[0].score - (1 / 62 + 1 / 61)) < 1e-12


def test_missing_gold_replaces_lowest_ranked_and_keeps_size():
    fused = [Hit(pid, 1.0 - i / 10) for i, pid in enumerate("abcdef")]
    pool = build_pool(fused, gold=["z"], size=4)
    assert [c.passage_id for c in pool] == ["a", "b", "c", "z"]
    assert [c.is_gold for c in pool] == [False, False, False, True]
    assert pool[-1].score == fused[2].score  # the pool's lowest score: rank gives gold away


def test_gold_already_ranked_is_marked_not_duplicated():
    fused = [Hit("a", 3.0), Hit("g", 2.0), Hit("b", 1.0)]
    pool = build_pool(fused, gold=["g"], size=3)
    assert [c.passage_id for c in pool] == ["a", "g", "b"]
    assert sum(c.is_gold for c in pool) == 1


def test_without_include_gold_the_pool_is_what_retrieval_found():
    fused = [Hit("a", 3.0), Hit("b", 2.0)]
    pool = build_pool(fused, gold=["z"], size=2, include_gold=False)
    assert [c.passage_id for c in pool] == ["a", "b"]


def test_bm25_scope_limits_results_to_the_document():
    corpus = Corpus(
        [
            Passage("a", "the river flows north", doc_id="d1"),
            Passage("b", "the river is long", doc_id="d2"),
            Passage("c", "mountains and valleys", doc_id="d1"),
        ]
    )
    index = BM25Index(corpus)
    scoped, unscoped = index.search(["river"], k=3, scopes=["d1"])[0], index.search(["river"], k=3)[0]
    assert {h.passage_id for h in scoped} == {"a", "c"}
    assert scoped[0].passage_id == "a"
    assert {h.passage_id for h in unscoped[:2]} == {"a", "b"}
