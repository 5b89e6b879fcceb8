"""BM25 over a corpus with bm25s, with optional per-query scope (retrieval inside a document).

An index folder may hold ``bm25/`` (written by :meth:`BM25Index.save`, with ``uae_bm25.json`` naming
the passages it was built on); :meth:`BM25Index.load` uses it only when those passages are the
index's, and rebuilds otherwise (after live edits, for instance).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from uae.data.schema import Corpus
from uae.retrieval.types import Hit


MANIFEST = "uae_bm25.json"


def corpus_digest(corpus: Corpus) -> str:
    """A digest of the passages' ids and texts, in order: what a saved BM25 index must match."""
    digest = hashlib.sha256()
    for passage in corpus:
        digest.update(json.dumps([passage.id, passage.full_text]).encode())
    return digest.hexdigest()[:16]


class BM25Index:
    """A bm25s index over ``corpus`` (title + text), English stop words removed."""

    def __init__(self, corpus: Corpus, k1: float = 1.5, b: float = 0.75, prebuilt: bm25s.BM25 | None = None):
        self.corpus = corpus
        if prebuilt is not None:
            self._retriever = prebuilt
            return
        self._retriever = bm25s.BM25(k1=k1, b=b)
        tokens = bm25s.tokenize(corpus.texts, stopwords="en", show_progress=False)
        self._retriever.index(tokens, show_progress=False)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the bm25s index and ``uae_bm25.json`` (a digest of the passages it covers) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MANIFEST).unlink(missing_ok=True)  # written last: a folder without it is never used
        self._retriever.save(str(folder), show_progress=False)
        (folder / MANIFEST).write_text(json.dumps({"passages": corpus_digest(self.corpus), "size": len(self.corpus)}))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, corpus: Corpus) -> BM25Index:
        """The saved index in ``folder`` when it was built on ``corpus``; otherwise one built now."""
        folder = Path(folder)
        try:
            saved = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            saved = {}
        if saved.get("passages") != corpus_digest(corpus):
            return cls(corpus)
        return cls(corpus, prebuilt=bm25s.BM25.load(str(folder), show_progress=False, verbosity=0))

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
