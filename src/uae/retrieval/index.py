"""A FAISS index of passage embeddings, bound to the model that built it, and editable while live.

Kinds (``IndexConfig.kind``), all inner product over unit vectors (= cosine):

- ``exact``: ``IndexIDMap2(IndexFlatIP)``, brute force. Removal is physical.
- ``hnsw``: ``IndexHNSWFlat`` (``hnsw_m``, ``ef_construction``, ``ef_search``). A graph cannot
  forget a node, so removal leaves a *tombstone*: the vector stays in FAISS and a bitmap of live
  rows filters it out at search time. ``tombstones`` counts them; rebuilding the index
  (``uae index``) reclaims their space.
- ``ivfpq``: ``IndexIVFPQ`` (``nlist``, ``pq_m``, ``nbits``, ``nprobe``), trained on a sample of the
  vectors. Removal is physical.

Every passage gets a *row*, an int64 FAISS id given when it enters the index and never reused
while the index lives. Scoped search (a query restricted to one ``doc_id``) works for every kind:
a scope of at most ``exact_scope_max`` passages is scored exactly over its stored vectors (graph
and cell searches filtered to a few ids miss most of them); a larger scope goes through the
kind's own search with an ID selector in ``SearchParameters`` / ``SearchParametersHNSW`` /
``SearchParametersIVF``.

On disk an index folder holds::

    meta.json                    model, fingerprint, dimension, kind, params, size, version, file names
    index-<version>.faiss        the FAISS index
    passages-<version>.parquet   row, passage_id, doc_id, text, title

``meta.json`` is the commit point: a save writes the new version's files, fsyncs them, then
replaces ``meta.json`` atomically, and only then deletes older versions. A crash at any moment
leaves a ``meta.json`` that names complete files. Folders from before versioning
(``index.faiss``, ``passages.parquet``, no rows) still load.

:class:`SearchIndex` is what the retriever, the server and the CLI use of an index; a vector
database collection (:mod:`uae.retrieval.vector_store`, ``meta.json`` with ``backend: "milvus"``)
is its second implementation, and :func:`load_index` opens either from an index folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from uae.data.schema import Corpus, Passage
from uae.data.tables import read_table, write_table
from uae.errors import DataError
from uae.io import atomic_path, atomic_write_json
from uae.retrieval.types import Hit

PASSAGE_SCHEMA = pa.schema(
    [("row", pa.int64()), ("passage_id", pa.string()), ("doc_id", pa.string()), ("text", pa.string()), ("title", pa.string())]
)
"""Folders written before ``title`` existed hold the title inside ``text`` (title. text) and still load."""
INDEX_KINDS = ("exact", "hnsw", "ivfpq")
META_FILE = "meta.json"
_OWNED_FILE = re.compile(r"^(index(-\d+)?\.faiss|passages(-\d+)?\.parquet|meta\.json)(\.tmp)?$")
_INTERRUPTED_FILE = re.compile(r"^(index-\d+\.faiss|passages-\d+\.parquet|meta\.json)(\.tmp)?$")
"""Names only a save of this module writes: what a killed first save may leave in a folder without ``meta.json``."""
_BUILT_BEFORE_META = {"shards", "bm25", "milvus.db", ".milvus.db.lock"}
"""What ``uae index`` writes before ``meta.json``: Ray encoding shards, the BM25 index, the embedded Milvus file."""
logger = logging.getLogger(__name__)


class IndexConfig(BaseModel):
    """Which FAISS structure holds the vectors, and its build and search parameters."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["exact", "hnsw", "ivfpq"] = "exact"
    hnsw_m: int = Field(32, ge=2, le=512, description="hnsw: neighbours per node (M)")
    ef_construction: int = Field(80, ge=1, description="hnsw: candidate list size while building")
    ef_search: int = Field(128, ge=1, description="hnsw: candidate list size while searching (at least k)")
    nlist: int | None = Field(None, ge=1, description="ivfpq: coarse cells; default sqrt(n), at most n/39")
    pq_m: int | None = Field(None, ge=1, description="ivfpq: sub-quantizers, must divide the dimension; default dimension/8")
    nbits: int = Field(8, ge=1, le=16, description="ivfpq: bits per sub-quantizer code")
    nprobe: int = Field(16, ge=1, description="ivfpq: cells visited per query")
    train_size: int | None = Field(None, ge=1, description="ivfpq: training sample; default 64 x max(nlist, 2^nbits)")
    exact_scope_max: int = Field(4096, ge=0, description="scopes with at most this many passages are scored exactly")
    seed: int = Field(0, description="ivfpq: seed of the training sample")


SEARCH_PARAMS = ("ef_search", "nprobe", "exact_scope_max")
"""The fields of :class:`IndexConfig` that :meth:`DenseIndex.tune` may change after building."""


@dataclass(frozen=True)
class IndexMeta:
    """What an index was built with; checked against the model before any search."""

    model: str
    fingerprint: str
    dimension: int
    kind: str
    size: int
    params: dict = field(default_factory=dict)
    version: int = 0
    index_file: str = "index.faiss"
    passages_file: str = "passages.parquet"
    backend: str = "faiss"


@runtime_checkable
class SearchIndex(Protocol):
    """What the retriever, the server and the CLI need of an index: FAISS in one process, or a vector database.

    ``meta`` carries the model and fingerprint the vectors came from (checked against the model
    before any search), ``search`` takes unit vectors and one scope (``doc_id``) or ``None`` per
    query, ``add``/``remove`` are all or nothing (:class:`DuplicatePassageError`,
    :class:`UnknownPassageError`), ``save`` makes the current state durable under an index folder.
    """

    meta: IndexMeta

    def search(self, query_vectors: np.ndarray, k: int, scopes: Sequence[str | None] | None = None) -> list[list[Hit]]: ...

    def search_passages(self, query_vectors: np.ndarray, k: int,
                        scopes: Sequence[str | None] | None = None) -> list[list[tuple[Hit, Passage]]]: ...

    def add(self, passages: Sequence[Passage], vectors: np.ndarray) -> None: ...

    def remove(self, passage_ids: Sequence[str]) -> int: ...

    def tune(self, **search_params: int) -> None: ...

    def get(self, passage_id: str) -> Passage: ...

    def has_scope(self, doc_id: str) -> bool: ...

    def save(self, folder: str | os.PathLike) -> Path: ...

    def __len__(self) -> int: ...

    def __contains__(self, passage_id: object) -> bool: ...

    @property
    def passages(self) -> Corpus: ...

    @property
    def tombstones(self) -> int: ...


def load_index(folder: str | os.PathLike) -> SearchIndex:
    """Open an index folder: a FAISS index, or the vector database collection its ``meta.json`` points to."""
    folder = Path(folder)
    if index_backend(folder) == "milvus":
        from uae.retrieval.vector_store import MilvusIndex

        return MilvusIndex.load(folder)
    return DenseIndex.load(folder)


def is_index_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an index folder (it holds ``meta.json``) rather than, say, a model folder."""
    return (Path(path) / META_FILE).is_file()


def index_backend(folder: str | os.PathLike) -> str:
    """``faiss`` or the vector database an index folder's ``meta.json`` names (``faiss`` when it names none)."""
    meta_path = Path(folder) / META_FILE
    if not meta_path.is_file():
        raise DataError(folder, None, "expected an index folder (meta.json, index-*.faiss, passages-*.parquet)")
    try:
        backend = json.loads(meta_path.read_text()).get("backend", "faiss")
    except (ValueError, AttributeError) as err:
        raise DataError(meta_path, None, f"expected the fields of IndexMeta ({err})") from None
    if backend not in ("faiss", "milvus"):
        raise DataError(meta_path, None, f"unknown backend {backend!r}; expected faiss or milvus")
    return backend


class DuplicatePassageError(ValueError):
    """Passages to add whose ids are already in the index (or repeated in the request)."""

    def __init__(self, ids: Sequence[str]):
        super().__init__(f"passage ids already in the index or repeated: {_preview(ids)}")
        self.ids = list(ids)


class UnknownPassageError(ValueError):
    """Passage ids to remove that the index does not hold."""

    def __init__(self, ids: Sequence[str]):
        super().__init__(f"passage ids not in the index: {_preview(ids)}")
        self.ids = list(ids)


class DenseIndex:
    """Unit-normalised passage vectors in FAISS plus the passages they stand for.

    Search, add, remove and save take an internal lock, so one index can serve threads.
    """

    def __init__(self, faiss_index: faiss.Index, rows: Sequence[int], passages: Sequence[Passage], meta: IndexMeta):
        self.faiss_index = faiss_index
        self.meta = meta
        self.config = IndexConfig(kind=meta.kind, **meta.params)
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._slots: list[Passage | None] = [None] * _slot_count(faiss_index, meta.kind, rows)
        self._row_of: dict[str, int] = {}
        for row, passage in zip(rows, passages):
            self._slots[row] = passage
            self._row_of[passage.id] = row
        self._scope_rows: dict[str, list[int]] | None = None
        self._live_selector: tuple[faiss.IDSelector, np.ndarray] | None = None
        self._corpus: Corpus | None = None

    # -- building and editing -------------------------------------------------------------

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        passages: Corpus | Sequence[Passage],
        model: str,
        fingerprint: str,
        kind: str = "exact",
        config: IndexConfig | None = None,
    ) -> DenseIndex:
        """Index ``vectors`` (one row per passage of ``passages``, in order).

        Args:
            vectors: ``(n, dimension)`` unit-normalised embeddings.
            passages: the passages the vectors stand for.
            model: the model path recorded in ``meta.json``.
            fingerprint: the model's weight fingerprint, checked when the index is loaded.
            kind: ``exact``, ``hnsw`` or ``ivfpq`` (ignored when ``config`` is given).
            config: every build and search parameter; defaults to ``IndexConfig(kind=kind)``.

        Returns:
            The index, in memory; call :meth:`save` to write it.
        """
        if config is None:
            if kind not in INDEX_KINDS:
                raise ValueError(f"unknown index kind {kind!r}; expected one of {INDEX_KINDS}")
            config = IndexConfig(kind=kind)
        passages = list(passages)
        vectors = as_matrix(vectors, None, "passage vectors")
        if len(vectors) != len(passages):
            raise ValueError(f"{len(vectors)} vectors for {len(passages)} passages")
        faiss_index, config = _new_faiss_index(config, vectors)
        meta = IndexMeta(model=model, fingerprint=fingerprint, dimension=vectors.shape[1], kind=config.kind, size=0,
                         params=config.model_dump(exclude={"kind"}))
        index = cls(faiss_index, [], [], meta)
        index.add(passages, vectors)
        return index

    def add(self, passages: Sequence[Passage], vectors: np.ndarray) -> None:
        """Add passages and their vectors; all or nothing.

        Args:
            passages: new passages; their ids must not be in the index yet.
            vectors: ``(len(passages), dimension)`` unit-normalised embeddings.

        Raises:
            DuplicatePassageError: an id is already indexed or repeated in ``passages``.
            ValueError: the vectors do not match the passages or the dimension.
        """
        passages = list(passages)
        vectors = as_matrix(vectors, self.meta.dimension, "passage vectors")
        if len(vectors) != len(passages):
            raise ValueError(f"{len(vectors)} vectors for {len(passages)} passages")
        with self._lock:
            clashes = _repeated([p.id for p in passages], self._row_of)
            if clashes:
                raise DuplicatePassageError(clashes)
            start = len(self._slots)
            rows = np.arange(start, start + len(passages), dtype=np.int64)
            if self.meta.kind == "hnsw":
                self.faiss_index.add(vectors)
            else:
                self.faiss_index.add_with_ids(vectors, rows)
            self._slots.extend(passages)
            for row, passage in zip(rows.tolist(), passages):
                self._row_of[passage.id] = row
                self._scope_add(passage, row)
            self._changed()

    def remove(self, passage_ids: Sequence[str]) -> int:
        """Remove passages by id; all or nothing. HNSW keeps tombstones (see the module notes).

        Args:
            passage_ids: ids to remove; a repeated id counts once.

        Returns:
            The number of passages removed.

        Raises:
            UnknownPassageError: an id is not in the index (nothing is removed).
        """
        ids = list(dict.fromkeys(passage_ids))
        with self._lock:
            unknown = [pid for pid in ids if pid not in self._row_of]
            if unknown:
                raise UnknownPassageError(unknown)
            rows = np.asarray([self._row_of[pid] for pid in ids], dtype=np.int64)
            if self.meta.kind != "hnsw" and len(rows):
                removed = self.faiss_index.remove_ids(faiss.IDSelectorArray(rows))
                if removed != len(rows):
                    raise RuntimeError(f"FAISS removed {removed} of {len(rows)} vectors; the index is inconsistent")
            for pid, row in zip(ids, rows.tolist()):
                self._scope_remove(self._slots[row], row)
                self._slots[row] = None
                del self._row_of[pid]
            self._changed()
        return len(ids)

    def tune(self, **search_params: int) -> None:
        """Change search-time parameters (``ef_search``, ``nprobe``, ``exact_scope_max``) without rebuilding."""
        unknown = sorted(set(search_params) - set(SEARCH_PARAMS))
        if unknown:
            raise ValueError(f"only {SEARCH_PARAMS} can change after building, not {unknown}")
        with self._lock:
            self.config = IndexConfig(**{**self.config.model_dump(), **search_params})
            self.meta = replace(self.meta, params=self.config.model_dump(exclude={"kind"}))

    # -- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, passage_id: object) -> bool:
        return passage_id in self._row_of

    def get(self, passage_id: str) -> Passage:
        """The passage with ``passage_id``; ``KeyError`` when it is not indexed."""
        return self._slots[self._row_of[passage_id]]

    @property
    def passages(self) -> Corpus:
        """The live passages, in the order they entered the index."""
        with self._lock:
            if self._corpus is None:
                self._corpus = Corpus(p for p in self._slots if p is not None)
            return self._corpus

    @property
    def tombstones(self) -> int:
        """Removed passages whose vectors FAISS still holds (HNSW only)."""
        return self.faiss_index.ntotal - len(self)

    def has_scope(self, doc_id: str) -> bool:
        """Whether any indexed passage carries ``doc_id``.

        Takes the lock only the first time (to build the scope table), so an event loop may call it.
        """
        scopes = self._scope_rows
        if scopes is None:
            with self._lock:
                scopes = self._scopes()
        return bool(scopes.get(doc_id))

    def search(self, query_vectors: np.ndarray, k: int, scopes: Sequence[str | None] | None = None) -> list[list[Hit]]:
        """Top-``k`` passages for each query vector; a query with a scope sees only its document.

        Args:
            query_vectors: ``(q, dimension)`` unit-normalised query embeddings.
            k: passages per query (fewer when the corpus or the scope is smaller).
            scopes: one ``doc_id`` or ``None`` per query; an unknown scope returns no hits.

        Returns:
            One list of hits per query, best first.
        """
        return [[hit for hit, _ in hits] for hits in self.search_passages(query_vectors, k, scopes)]

    def search_passages(self, query_vectors: np.ndarray, k: int,
                        scopes: Sequence[str | None] | None = None) -> list[list[tuple[Hit, Passage]]]:
        """:meth:`search`, each hit with its passage, all read under one lock: one version of the index.

        A caller that looked the passages up afterwards could find some removed in between (a live
        service deletes while it answers); these pairs never disagree with the ranking.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        query_vectors = as_matrix(query_vectors, self.meta.dimension, "query vectors")
        scopes = list(scopes) if scopes is not None else [None] * len(query_vectors)
        if len(scopes) != len(query_vectors):
            raise ValueError(f"{len(scopes)} scopes for {len(query_vectors)} queries")
        results: list[list[tuple[Hit, Passage]]] = [[] for _ in range(len(query_vectors))]
        with self._lock:
            for scope, members in group_by_scope(scopes).items():
                scores, rows = self._search_scope(query_vectors[members], k, scope)
                for member, member_scores, member_rows in zip(members, scores, rows):
                    results[member] = [
                        (Hit(self._slots[row].id, float(score)), self._slots[row])
                        for score, row in zip(member_scores.tolist(), member_rows.tolist())
                        if row >= 0
                    ]
        return results

    def _search_scope(self, vectors: np.ndarray, k: int, scope: str | None) -> tuple[np.ndarray, np.ndarray]:
        if scope is None:
            if not len(self):
                return _no_hits(len(vectors))
            return self._faiss_search(vectors, min(k, len(self)), self._live_rows_selector())
        rows = np.asarray(self._scopes().get(scope, []), dtype=np.int64)
        if not len(rows):
            return _no_hits(len(vectors))
        if len(rows) <= self.config.exact_scope_max:
            return _exact_top_k(vectors, self.faiss_index.reconstruct_batch(rows), rows, k)
        return self._faiss_search(vectors, min(k, len(rows)), faiss.IDSelectorBatch(rows))

    def _faiss_search(self, vectors: np.ndarray, k: int, selector: faiss.IDSelector | None) -> tuple[np.ndarray, np.ndarray]:
        if self.meta.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, k))
        elif self.meta.kind == "ivfpq":
            params = faiss.SearchParametersIVF(nprobe=self.config.nprobe)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return self.faiss_index.search(vectors, k, params=params)

    def _live_rows_selector(self) -> faiss.IDSelector | None:
        """A bitmap of live rows when tombstones exist (HNSW), else no filter."""
        if not self.tombstones:
            return None
        if self._live_selector is None:
            live = np.fromiter((p is not None for p in self._slots), dtype=bool, count=len(self._slots))
            bitmap = np.packbits(live, bitorder="little")
            self._live_selector = (faiss.IDSelectorBitmap(len(live), faiss.swig_ptr(bitmap)), bitmap)
        return self._live_selector[0]

    def _scopes(self) -> dict[str, list[int]]:
        if self._scope_rows is None:
            self._scope_rows = {}
            for row, passage in enumerate(self._slots):
                if passage is not None:
                    self._scope_add(passage, row)
        return self._scope_rows

    def _scope_add(self, passage: Passage, row: int) -> None:
        if self._scope_rows is not None and passage.doc_id is not None:
            self._scope_rows.setdefault(passage.doc_id, []).append(row)

    def _scope_remove(self, passage: Passage, row: int) -> None:
        if self._scope_rows is not None and passage.doc_id is not None:
            members = self._scope_rows[passage.doc_id]
            members.remove(row)
            if not members:
                del self._scope_rows[passage.doc_id]

    def _changed(self) -> None:
        self._live_selector = None
        self._corpus = None
        self.meta = replace(self.meta, size=len(self))

    # -- persistence ----------------------------------------------------------------------

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the index folder crash-safely: new version files first, then ``meta.json``.

        One process at a time may save into a folder (threads of this process are serialised).
        The index lock is held only while the FAISS index is serialised to memory and the live
        passages are listed, not while files are written, so searches and edits go on meanwhile.

        Args:
            folder: the index folder; created if missing, an older version in it is replaced.

        Returns:
            The folder.
        """
        folder = Path(folder)
        check_index_folder(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with self._save_lock:
            with self._lock:  # a consistent snapshot: vectors and passages of the same moment
                serialized = faiss.serialize_index(self.faiss_index)
                rows = self._live_rows()
                current = replace(self.meta, size=len(rows))
            previous = _referenced_files(folder)
            version = max(current.version, _stored_version(folder)) + 1
            files = {"version": version, "index_file": f"index-{version:06d}.faiss", "passages_file": f"passages-{version:06d}.parquet"}
            meta = replace(current, **files)
            _write_bytes(serialized, folder / meta.index_file)
            _write_passages(rows, folder / meta.passages_file)
            atomic_write_json(folder / META_FILE, asdict(meta), durable=True)
            with self._lock:
                self.meta = replace(self.meta, **files)
            removed = _remove_stale(folder, keep={META_FILE, meta.index_file, meta.passages_file})
        if orphans := sorted(set(removed) - previous):
            logger.warning("%s: removed %d file(s) left by an interrupted save: %s", folder, len(orphans), ", ".join(orphans))
        return folder

    def _live_rows(self) -> list[tuple[int, Passage]]:
        return [(row, p) for row, p in enumerate(self._slots) if p is not None]

    @classmethod
    def load(cls, folder: str | os.PathLike) -> DenseIndex:
        """Read an index folder written by :meth:`save` (or by versions before it)."""
        folder = Path(folder)
        meta = _read_meta(folder)
        rows, passages = _read_passages(_inside(folder, meta.passages_file))
        index_path = _inside(folder, meta.index_file)
        if not index_path.is_file():
            raise DataError(index_path, None, "file not found (named in meta.json)")
        try:
            faiss_index = faiss.read_index(str(index_path))
        except RuntimeError as err:  # FAISS reports a truncated or foreign file as a C++ assertion
            raise DataError(index_path, None, f"expected a complete FAISS index file ({str(err).splitlines()[0][-160:]})") from None
        faiss_index = _upgrade_legacy(faiss_index, meta.kind)
        _check_consistent(folder, meta, faiss_index, rows)
        return cls(faiss_index, rows, passages, meta)


# -- FAISS structures ---------------------------------------------------------------------


def _new_faiss_index(config: IndexConfig, vectors: np.ndarray) -> tuple[faiss.Index, IndexConfig]:
    """An empty FAISS index of ``config.kind`` (trained on ``vectors`` for ivfpq), and the resolved config."""
    dimension = vectors.shape[1]
    if config.kind == "exact":
        return faiss.index_factory(dimension, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT), config
    if config.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
        return index, config
    return _trained_ivfpq(config, vectors)


def _trained_ivfpq(config: IndexConfig, vectors: np.ndarray) -> tuple[faiss.Index, IndexConfig]:
    count, dimension = vectors.shape
    nlist = config.nlist or max(1, min(round(math.sqrt(count)), count // 39))
    pq_m = config.pq_m or max(m for m in range(1, max(1, dimension // 8) + 1) if dimension % m == 0)
    if dimension % pq_m:
        raise ValueError(f"ivfpq: pq_m={pq_m} must divide the dimension {dimension}")
    needed = max(nlist, 2**config.nbits)
    if count < needed:
        raise ValueError(
            f"ivfpq needs at least {needed} vectors to train (nlist={nlist}, 2^nbits={2**config.nbits}), got {count}; "
            "use kind 'exact' or 'hnsw', or lower nlist/nbits"
        )
    index = faiss.index_factory(dimension, f"IVF{nlist},PQ{pq_m}x{config.nbits}", faiss.METRIC_INNER_PRODUCT)
    index.do_polysemous_training = False  # only for Hamming-filtered search; costs minutes
    sample_size = min(count, config.train_size or 64 * needed)
    sample = np.random.default_rng(config.seed).choice(count, sample_size, replace=False) if sample_size < count else None
    index.train(vectors if sample is None else vectors[np.sort(sample)])
    faiss.extract_index_ivf(index).set_direct_map_type(faiss.DirectMap.Hashtable)
    return index, config.model_copy(update={"nlist": nlist, "pq_m": pq_m})


def _upgrade_legacy(faiss_index: faiss.Index, kind: str) -> faiss.Index:
    """Wrap a plain ``IndexFlatIP`` (written before rows existed) into ``IndexIDMap2`` with rows 0..n-1."""
    if kind != "exact" or isinstance(faiss_index, faiss.IndexIDMap2):
        return faiss_index
    wrapped = faiss.index_factory(faiss_index.d, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
    wrapped.add_with_ids(faiss_index.reconstruct_n(0, faiss_index.ntotal), np.arange(faiss_index.ntotal, dtype=np.int64))
    return wrapped


def _slot_count(faiss_index: faiss.Index, kind: str, rows: Sequence[int]) -> int:
    """Rows ever handed out: HNSW numbers its vectors itself; the others carry our row ids."""
    if kind == "hnsw":
        return faiss_index.ntotal
    return int(max(rows)) + 1 if len(rows) else 0


def _exact_top_k(queries: np.ndarray, stored: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` of ``queries`` over ``stored`` (ties: lower row first)."""
    scores = queries @ stored.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), rows[order]


def _no_hits(count: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((count, 0), dtype=np.float32), np.empty((count, 0), dtype=np.int64)


def as_matrix(vectors: np.ndarray, dimension: int | None, what: str) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``(count, dimension)`` matrix; ``ValueError`` on a bad shape or value."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array (count, dimension), got shape {vectors.shape}")
    if dimension is not None and vectors.shape[1] != dimension:
        raise ValueError(f"{what}: expected dimension {dimension}, got {vectors.shape[1]}")
    if not np.isfinite(vectors).all():
        raise ValueError(f"{what}: contain NaN or infinite values")
    return vectors


def _repeated(ids: list[str], existing: dict[str, int]) -> list[str]:
    seen: set[str] = set()
    clashes = []
    for pid in ids:
        if pid in existing or pid in seen:
            clashes.append(pid)
        seen.add(pid)
    return clashes


def _preview(ids: Sequence[str], shown: int = 5) -> str:
    listed = ", ".join(repr(i) for i in list(ids)[:shown])
    return f"{listed} (and {len(ids) - shown} more)" if len(ids) > shown else listed


def group_by_scope(scopes: Sequence[str | None]) -> dict[str | None, list[int]]:
    """Query positions by scope, so that each scope is searched once."""
    groups: dict[str | None, list[int]] = {}
    for position, scope in enumerate(scopes):
        groups.setdefault(scope, []).append(position)
    return groups


# -- files --------------------------------------------------------------------------------


def _write_bytes(serialized: np.ndarray, path: Path) -> None:
    """Write a serialised FAISS index (``faiss.serialize_index``: the bytes ``write_index`` writes)."""
    with atomic_path(path, durable=True) as tmp:
        serialized.tofile(tmp)


def _write_passages(rows: list[tuple[int, Passage]], path: Path) -> None:
    table = pa.table(
        {
            "row": [row for row, _ in rows],
            "passage_id": [p.id for _, p in rows],
            "doc_id": [p.doc_id for _, p in rows],
            "text": [p.text for _, p in rows],
            "title": [p.title for _, p in rows],
        },
        schema=PASSAGE_SCHEMA,
    )
    write_table(table, path, durable=True)


def check_index_folder(folder: str | os.PathLike) -> None:
    """Refuse to save into a folder that holds anything but a ``uae`` index: saving would delete files there.

    Accepted: a missing or empty folder, a folder whose ``meta.json`` is an index's (FAISS, or a
    vector database's pointer; the store refuses an existing collection itself), and a folder
    holding only what a killed first save leaves (versioned index files, no ``meta.json``).

    Raises:
        DataError: the folder is not empty and not a ``uae`` index folder.
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise DataError(folder, None, "expected a folder for the index, found a file")
    names = [path.name for path in folder.iterdir()]
    if META_FILE not in names and all(_INTERRUPTED_FILE.match(name) or name in _BUILT_BEFORE_META for name in names):
        return  # empty, or what a killed first save (or the encoding and store before it) left
    try:
        if index_backend(folder) == "faiss":
            _read_meta(folder)
    except DataError:
        listed = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        raise DataError(folder, None, f"not a uae index folder (it holds {listed} and no index meta.json); saving would "
                                      "delete files there. Expected an empty folder, a new one or an existing uae index") from None


def _inside(folder: Path, name: str) -> Path:
    """``folder / name`` when it is a file directly in ``folder`` (links resolved); a ``meta.json`` may not point elsewhere."""
    path = folder / name
    if not name or Path(name).name != name or path.resolve().parent != folder.resolve():
        raise DataError(folder / META_FILE, None, f"expected file names inside the index folder, found {name!r}")
    return path


def _referenced_files(folder: Path) -> set[str]:
    """The files the folder's current ``meta.json`` names (nothing when there is none)."""
    try:
        meta = json.loads((folder / META_FILE).read_text())
        return {META_FILE, str(meta.get("index_file", "index.faiss")), str(meta.get("passages_file", "passages.parquet"))}
    except (OSError, ValueError, AttributeError):
        return set()


def _stored_version(folder: Path) -> int:
    try:
        return int(json.loads((folder / META_FILE).read_text()).get("version", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def _remove_stale(folder: Path, keep: set[str]) -> list[str]:
    """Delete older versions' files (only names this module writes); returns the names deleted."""
    removed = []
    for path in folder.iterdir():
        if path.name not in keep and _OWNED_FILE.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def _read_meta(folder: Path) -> IndexMeta:
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise DataError(folder, None, "expected an index folder (meta.json, index-*.faiss, passages-*.parquet)")
    try:
        return IndexMeta(**json.loads(meta_path.read_text()))
    except (ValueError, TypeError) as err:
        raise DataError(meta_path, None, f"expected the fields of IndexMeta ({err})") from None


def _read_passages(path: Path) -> tuple[list[int], list[Passage]]:
    names = pq.read_schema(path).names if path.is_file() else PASSAGE_SCHEMA.names
    schema = pa.schema([f for f in PASSAGE_SCHEMA if f.name in names or f.name not in ("row", "title")])
    table = read_table(path, schema)
    ids, docs, texts = (table[name].to_pylist() for name in ("passage_id", "doc_id", "text"))
    titles = table["title"].to_pylist() if "title" in names else [""] * len(ids)
    rows = table["row"].to_pylist() if "row" in names else list(range(len(ids)))
    return rows, [Passage(id=pid, text=text, title=title or "", doc_id=doc)
                  for pid, doc, text, title in zip(ids, docs, texts, titles)]


def _check_consistent(folder: Path, meta: IndexMeta, faiss_index: faiss.Index, rows: list[int]) -> None:
    if meta.kind not in INDEX_KINDS:
        raise DataError(folder / META_FILE, None, f"unknown index kind {meta.kind!r}; expected one of {INDEX_KINDS}")
    if faiss_index.d != meta.dimension:
        raise DataError(folder, None, f"index has dimension {faiss_index.d}, meta.json says {meta.dimension}")
    if meta.size != len(rows):
        raise DataError(folder, None, f"meta.json says {meta.size} passages, {meta.passages_file} holds {len(rows)}")
    stored = faiss_index.ntotal
    if (meta.kind == "hnsw" and rows and max(rows) >= stored) or (meta.kind != "hnsw" and stored != len(rows)):
        raise DataError(folder, None, f"index holds {stored} vectors for {len(rows)} passages")
