"""BM25 over a corpus with bm25s, with optional per-query scope (retrieval inside a document)."""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np

from uae.data.schema import Corpus
from uae.retrieval.types import Hit


class BM25Index:
    """A bm25s index over ``corpus`` (title + text), English stop words removed."""

    def __init__(self, corpus: Corpus, k1: float = 1.5, b: float = 0.75):
        self.corpus = corpus
        self._retriever = bm25s.BM25(k1=k1, b=b)
        tokens = bm25s.tokenize(corpus.texts, stopwords="en", show_progress=False)
        self._retriever.index(tokens, show_progress=False)

    def search(self, texts: Sequence[str], k: int, scopes: Sequence[str | None] | None = None) -> list[list[Hit]]:
        """Top-``k`` passages per query; a query with a scope sees only that document's passages."""
        scopes = list(scopes) if scopes is not None else [None] * len(texts)
        tokenized = bm25s.tokenize(list(texts), stopwords="en", show_progress=False, return_ids=False)
        return [self._search_one(tokens, k, scope) for tokens, scope in zip(tokenized, scopes)]

    def _search_one(self, tokens: list[str], k: int, scope: str | None) -> list[Hit]:
        scores = self._retriever.get_scores(tokens) if tokens else np.zeros(len(self.corpus), dtype=np.float32)
        rows = self.corpus.rows_in_scope(scope)
        candidates = np.arange(len(self.corpus)) if rows is None else np.asarray(rows, dtype=np.int64)
        if candidates.size == 0:
            return []
        local = scores[candidates]
        top = np.argsort(-local, kind="stable")[:k]
        return [Hit(self.corpus.passages[candidates[i]].id, float(local[i])) for i in top]
