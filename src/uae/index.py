"""A FAISS index of passage embeddings, bound to the model that built it.

On disk an index folder holds::

    index.faiss       the FAISS index (inner product over unit vectors = cosine)
    passages.parquet  row -> passage id, doc_id (scope) and text
    meta.json         model path, model fingerprint, dimension, kind, size

Scoped search (a query restricted to one document's passages) uses FAISS's ID
selectors, so one index serves every document: no index per document.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa

from uae.data.beir import DataError
from uae.data.schema import Corpus, Passage
from uae.data.tables import read_table, write_table
from uae.retrieval_types import Hit

PASSAGE_SCHEMA = pa.schema([("passage_id", pa.string()), ("doc_id", pa.string()), ("text", pa.string())])
INDEX_KINDS = ("exact",)


@dataclass(frozen=True)
class IndexMeta:
    """What an index was built with; checked against the model before any search."""

    model: str
    fingerprint: str
    dimension: int
    kind: str
    size: int


class DenseIndex:
    """Unit-normalised passage vectors in FAISS plus the passages they stand for."""

    def __init__(self, faiss_index: faiss.Index, passages: Corpus, meta: IndexMeta):
        self.faiss_index = faiss_index
        self.passages = passages
        self.meta = meta

    @classmethod
    def build(cls, vectors: np.ndarray, passages: Corpus, model: str, fingerprint: str, kind: str = "exact") -> DenseIndex:
        """Index ``vectors`` (one row per passage of ``passages``, in corpus order)."""
        if kind not in INDEX_KINDS:
            raise ValueError(f"unknown index kind {kind!r}; expected one of {INDEX_KINDS}")
        if len(vectors) != len(passages):
            raise ValueError(f"{len(vectors)} vectors for {len(passages)} passages")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        meta = IndexMeta(model=model, fingerprint=fingerprint, dimension=vectors.shape[1], kind=kind, size=len(passages))
        return cls(index, passages, meta)

    def search(self, query_vectors: np.ndarray, k: int, scopes: Sequence[str | None] | None = None) -> list[list[Hit]]:
        """Top-``k`` passages for each query vector; a query with a scope sees only its document."""
        query_vectors = np.ascontiguousarray(query_vectors, dtype=np.float32)
        scopes = list(scopes) if scopes is not None else [None] * len(query_vectors)
        results: list[list[Hit]] = [[] for _ in range(len(query_vectors))]
        for scope, members in _group_by_scope(scopes).items():
            scores, rows = self._search_scope(query_vectors[members], k, scope)
            for member, member_scores, member_rows in zip(members, scores, rows):
                results[member] = [
                    Hit(self.passages.passages[row].id, float(score))
                    for score, row in zip(member_scores, member_rows)
                    if row >= 0
                ]
        return results

    def _search_scope(self, vectors: np.ndarray, k: int, scope: str | None) -> tuple[np.ndarray, np.ndarray]:
        rows = self.passages.rows_in_scope(scope)
        if rows is None:
            return self.faiss_index.search(vectors, min(k, self.faiss_index.ntotal))
        if not rows:
            return np.empty((len(vectors), 0)), np.empty((len(vectors), 0), dtype=np.int64)
        selector = faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64))
        params = faiss.SearchParameters(sel=selector)
        return self.faiss_index.search(vectors, min(k, len(rows)), params=params)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the index folder; each file goes through a temporary name."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "index.faiss.tmp"
        faiss.write_index(self.faiss_index, str(tmp))
        os.replace(tmp, folder / "index.faiss")
        table = pa.table(
            {
                "passage_id": [p.id for p in self.passages],
                "doc_id": [p.doc_id for p in self.passages],
                "text": [p.full_text for p in self.passages],
            },
            schema=PASSAGE_SCHEMA,
        )
        write_table(table, folder / "passages.parquet")
        (folder / "meta.json.tmp").write_text(json.dumps(asdict(self.meta), indent=2))
        os.replace(folder / "meta.json.tmp", folder / "meta.json")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> DenseIndex:
        folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise DataError(folder, None, "expected an index folder (meta.json, index.faiss, passages.parquet)")
        meta = IndexMeta(**json.loads(meta_path.read_text()))
        table = read_table(folder / "passages.parquet", PASSAGE_SCHEMA)
        passages = Corpus(
            Passage(id=pid, text=text, doc_id=doc)
            for pid, doc, text in zip(
                table["passage_id"].to_pylist(), table["doc_id"].to_pylist(), table["text"].to_pylist()
            )
        )
        faiss_index = faiss.read_index(str(folder / "index.faiss"))
        if faiss_index.ntotal != len(passages) or meta.size != len(passages):
            raise DataError(folder, None, f"index holds {faiss_index.ntotal} vectors for {len(passages)} passages")
        return cls(faiss_index, passages, meta)


def _group_by_scope(scopes: Sequence[str | None]) -> dict[str | None, list[int]]:
    groups: dict[str | None, list[int]] = {}
    for position, scope in enumerate(scopes):
        groups.setdefault(scope, []).append(position)
    return groups
