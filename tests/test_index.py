"""The FAISS index: exact search, scoped search, persistence, and the model binding."""

from __future__ import annotations

import numpy as np
import pytest

from uae.data.schema import Corpus, Passage
from uae.retrieval.index import DenseIndex


def _unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def index():
    corpus = Corpus([Passage("a", "A", doc_id="d1"), Passage("b", "B", doc_id="d2"), Passage("c", "C", doc_id="d1")])
    vectors = _unit([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0]])
    return DenseIndex.build(vectors, corpus, model="m", fingerprint="f")


def test_exact_search_orders_by_cosine(index):
    hits = index.search(_unit([[1, 0.05, 0]]), k=3)[0]
    assert [h.passage_id for h in hits] == ["a", "b", "c"]


def test_scoped_search_sees_only_its_document(index):
    hits = index.search(_unit([[1, 0.05, 0], [1, 0.05, 0]]), k=3, scopes=["d2", "d1"])
    assert [h.passage_id for h in hits[0]] == ["b"]
    assert [h.passage_id for h in hits[1]] == ["a", "c"]


def test_unknown_scope_returns_nothing(index):
    assert index.search(_unit([[1, 0, 0]]), k=3, scopes=["nope"]) == [[]]


def test_save_load_round_trip(index, tmp_path):
    loaded = DenseIndex.load(index.save(tmp_path / "ix"))
    assert loaded.meta == index.meta
    assert loaded.search(_unit([[0, 1, 0]]), k=1) == index.search(_unit([[0, 1, 0]]), k=1)
    assert loaded.passages["a"].doc_id == "d1"
