"""The query-time object: one encoder call and one index search (FAISS, or a vector database), no LLM.

    retriever = Retriever.load("runs/quickstart/index")
    hits = retriever.search(["who founded Velmora?"], k=5)
    hits = retriever.search(["who founded Velmora?"], k=5, hybrid=True)   # dense + BM25, fused

Hybrid search fuses the dense ranking with BM25's by reciprocal rank fusion (RRF,
``1 / (60 + rank)`` summed over the two rankings of depth ``max(k, FUSION_DEPTH)``). RRF and not a
weighted sum of scores: cosine and BM25 scores live on unrelated scales that change with the
corpus and the query, so a weighted sum needs normalisation and a weight tuned per dataset; ranks
need neither. Scopes apply to both rankings. The BM25 index is saved with the index (``bm25/``)
and rebuilt when the passages changed since.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from uae.data.schema import Corpus
from uae.errors import ModelIndexMismatch, check_model_reference
from uae.retrieval.bm25 import BM25Index
from uae.retrieval.embedding_cache import EmbeddingCache
from uae.retrieval.encoders import display_name, encode, load_encoder, model_fingerprint, resolve_encoder
from uae.retrieval.index import DenseIndex, IndexConfig, SearchIndex, load_index
from uae.retrieval.types import Hit

FUSION_DEPTH = 100
"""Depth of each ranking fused by hybrid search (at least ``k``)."""
RRF_K = 60
"""The RRF constant (Cormack et al., 2009); the same as candidate mining's."""
BM25_FOLDER = "bm25"


class Retriever:
    """A bi-encoder and the index its passage vectors live in."""

    def __init__(self, model, index: SearchIndex, batch_size: int = 64, model_name: str | None = None):
        self.model = model
        self.index = index
        self.batch_size = batch_size
        self.model_name = model_name or display_name(index.meta.model)
        """The encoder's name for people and clients: a hub name as given, a local folder by its name only."""
        self.bm25_folder: Path | None = None
        self._bm25: BM25Index | None = None

    @classmethod
    def build(
        cls,
        model_path: str,
        corpus: Corpus,
        max_seq_length: int | None = None,
        progress: bool = True,
        kind: str = "exact",
        index_config: IndexConfig | None = None,
        store=None,
        folder: str | os.PathLike | None = None,
        vectors=None,
        embeddings: EmbeddingCache | None = None,
    ) -> Retriever:
        """Encode ``corpus`` with the model at ``model_path`` and index it.

        ``index_config`` chooses the index structure and its parameters (it overrides ``kind``).
        ``store`` (a :class:`uae.retrieval.vector_store.StoreConfig`): write the vectors into a
        vector database collection instead of an in-memory FAISS index; ``folder`` is the index
        folder (where the embedded store's file goes). ``vectors``: the corpus's embeddings by this
        model, already computed (e.g. by :func:`uae.retrieval.ray_encoding.encode_corpus_ray`).
        ``embeddings``: take the vectors from this disk cache when it holds them, else encode them
        and add them to it.
        """
        model = load_encoder(model_path, max_seq_length=max_seq_length)
        fingerprint = model_fingerprint(model_path)
        key = embeddings.key(fingerprint, corpus, max_seq_length) if vectors is None and embeddings is not None else None
        if key is not None:
            vectors = embeddings.load(key, len(corpus))
        if vectors is None:
            vectors = encode(model, corpus.texts, description="encoding passages", progress=progress)
            if key is not None:
                embeddings.save(key, vectors)
        index = build_index(vectors, corpus, _absolute(resolve_encoder(model_path)), fingerprint,
                            index_config or IndexConfig(kind=kind), store, folder)
        return cls(model, index, model_name=display_name(model_path))

    @classmethod
    def load(cls, index_dir: str | os.PathLike, model_path: str | None = None) -> Retriever:
        """Load an index folder (FAISS or a vector database collection) and the model recorded in it (or ``model_path``), refusing a mismatch."""
        index = load_index(index_dir)
        model_path = model_path or index.meta.model
        check_model_reference(resolve_encoder(model_path), "encoder")
        fingerprint = model_fingerprint(model_path)
        if fingerprint != index.meta.fingerprint:
            raise ModelIndexMismatch(
                f"{Path(index_dir)}: index was built by model {index.meta.model} (fingerprint {index.meta.fingerprint}), "
                f"but {model_path} has fingerprint {fingerprint}; rebuild the index with `uae index`"
            )
        retriever = cls(load_encoder(model_path), index, model_name=display_name(model_path))
        retriever.bm25_folder = Path(index_dir) / BM25_FOLDER
        return retriever

    def save(self, index_dir: str | os.PathLike, bm25: bool = True) -> Path:
        """Write the index folder, and with ``bm25`` the BM25 index of its passages (``bm25/``) for hybrid search."""
        folder = self.index.save(index_dir)
        if bm25:
            self.bm25().save(folder / BM25_FOLDER)
            self.bm25_folder = folder / BM25_FOLDER
        return folder

    def bm25(self) -> BM25Index:
        """BM25 over the live passages: the saved one when it matches them, else built now (and after every edit)."""
        passages = self.index.passages
        if self._bm25 is None or self._bm25.corpus is not passages:
            self._bm25 = BM25Index.load(self.bm25_folder, passages) if self.bm25_folder else BM25Index(passages)
        return self._bm25

    def search(self, queries: Sequence[str], k: int = 10, scopes: Sequence[str | None] | None = None, progress: bool = False,
               hybrid: bool = False) -> list[list[Hit]]:
        """Top-``k`` passages for each query text; ``scopes`` restricts a query to one document.

        With ``hybrid``, the dense and BM25 rankings are fused by RRF (see the module notes); scores are then RRF scores.
        """
        vectors = encode(self.model, list(queries), self.batch_size, description="encoding queries", progress=progress)
        if not hybrid:
            return self.index.search(vectors, k, scopes)
        return self.fuse_with_bm25(queries, self.index.search(vectors, max(k, FUSION_DEPTH), scopes), k, scopes)

    def fuse_with_bm25(self, queries: Sequence[str], dense: Sequence[Sequence[Hit]], k: int,
                       scopes: Sequence[str | None] | None = None) -> list[list[Hit]]:
        """Fuse dense rankings (one per query, ideally ``FUSION_DEPTH`` deep) with BM25's by RRF; top ``k`` each."""
        from uae.retrieval.mining import reciprocal_rank_fusion

        lexical = self.bm25().search(list(queries), max(k, FUSION_DEPTH), scopes)
        return [reciprocal_rank_fusion([d, l], RRF_K)[:k] for d, l in zip(dense, lexical)]


    def hit_record(self, hit: Hit) -> dict:
        """A hit with its passage, for people and programs: passage_id, score, text, title, doc_id."""
        passage = self.index.get(hit.passage_id)
        return {"passage_id": hit.passage_id, "score": hit.score, "text": passage.text, "title": passage.title,
                "doc_id": passage.doc_id}


def build_index(vectors, passages, model: str, fingerprint: str, config: IndexConfig, store=None,
                folder: str | os.PathLike | None = None) -> SearchIndex:
    """Index ``vectors`` (one row per passage): in memory with FAISS, or into the vector database ``store``.

    Args:
        vectors: ``(n, dimension)`` unit-normalised embeddings.
        passages: the passages they stand for, in order.
        model: the model path recorded with the index.
        fingerprint: the model's weight fingerprint.
        config: the index kind and its parameters.
        store: a :class:`uae.retrieval.vector_store.StoreConfig`, or ``None`` for FAISS.
        folder: the index folder; needed with ``store``.
    """
    if store is None:
        return DenseIndex.build(vectors, passages, model=model, fingerprint=fingerprint, config=config)
    if folder is None:
        raise ValueError("a vector database index needs its index folder")
    from uae.retrieval.vector_store import MilvusIndex

    return MilvusIndex.build(vectors, passages, model, fingerprint, folder, store, config)


class RetrieverCache:
    """Corpora encoded by a model, kept for the stages of one run that search them with the same model.

    Mining and evaluation both search the corpus with the base encoder; the run encodes it once.
    The cache holds the corpus it was built for, so a corpus is recognised by identity only while
    it is alive. With ``embeddings`` (a disk cache), vectors also outlive the run: a later run in
    the same folder finds them there.
    """

    def __init__(self, embeddings: EmbeddingCache | None = None) -> None:
        self.embeddings = embeddings
        self._built: dict[tuple[str, int], tuple[Corpus, Retriever]] = {}

    def __contains__(self, key: tuple[str, Corpus]) -> bool:
        model_path, corpus = key
        return (str(model_path), id(corpus)) in self._built

    def get(self, model_path: str, corpus: Corpus, progress: bool = True) -> Retriever:
        """The retriever of ``corpus`` encoded by ``model_path``, built on first use."""
        key = (str(model_path), id(corpus))
        if key not in self._built:
            self._built[key] = (corpus, Retriever.build(str(model_path), corpus, progress=progress, embeddings=self.embeddings))
        return self._built[key][1]


def _absolute(model: str) -> str:
    """A local model folder as an absolute path, so the index finds it from any working directory."""
    path = Path(model)
    return str(path.resolve()) if path.is_dir() else model
