"""A Milvus collection as the search backend past one machine, behind the same interface as the FAISS index.

Why Milvus. The store had to (1) run its real engine in-process with no server, so tests and a
laptop need nothing else, (2) reach a distributed cluster with the same client code by URI, and
(3) support a scalar filter on ``doc_id`` (scoped search), delete by id and reopening from disk.
Milvus qualifies on all three: Milvus Lite 2.x (``milvus-lite<3``, used by ``pymilvus`` when the
URI is a local ``*.db`` file) runs Milvus's own engine (the C++ segment core and the knowhere index
library it ships, about 170 MB) as a local process behind a Unix socket, with no server to set
up, and the same ``MilvusClient`` talks to a standalone or distributed Milvus at
``http://host:19530``. Checked when this was written: ``milvus-lite`` 3.x is a rewrite "from
scratch in pure Python" (FAISS segments under a gRPC adapter), no longer the engine, so the
``milvus`` extra holds it below 3; and Qdrant's ``qdrant-client`` local mode (``QdrantClient(path=...)``)
is likewise a pure-Python re-implementation of the search, not the engine that serves a Qdrant
cluster. (Qdrant Edge, Qdrant's embedded engine, has its own API rather than the client that
talks to a cluster, and was not evaluated.) Milvus Lite 2.x has no nullable fields and no filter
templates, so a passage without a document stores ``doc_id = ""`` and a scope is an escaped
string literal in the filter.

The collection holds, per passage: ``passage_id`` (primary key), ``doc_id``, ``text`` and the
unit-normalised ``vector``; the collection's description, written when it is created, holds the
model path, its weight fingerprint, the dimension and the index parameters as JSON, so a
collection is refused for another model (as a FAISS index folder is) whichever folder points to
it. Index types: ``exact`` is Milvus ``FLAT`` and ``hnsw`` is ``HNSW`` (``M``, ``efConstruction``,
``ef`` from :class:`~uae.retrieval.index.IndexConfig`); the metric is inner product over unit
vectors (= cosine). Milvus Lite builds only ``FLAT`` (its documentation says other index types
fall back to it), so on a laptop search is exact; on a cluster ``hnsw`` is the real graph.

The index folder (``uae index --backend milvus --out DIR``) holds ``meta.json`` with
``backend: "milvus"``, the store's URI (``milvus.db`` beside it for the embedded store) and the
collection name; :func:`uae.retrieval.index.load_index` opens it. The collection is the data:
``save`` only flushes it and rewrites ``meta.json``; removal is physical (Milvus compacts deleted
rows itself), so there are no tombstones to count.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from uae.data.schema import Corpus, Passage
from uae.errors import DataError, import_optional
from uae.io import atomic_write_json
from uae.retrieval.index import (
    META_FILE,
    DuplicatePassageError,
    IndexConfig,
    IndexMeta,
    UnknownPassageError,
    as_matrix,
    group_by_scope,
)
from uae.retrieval.types import Hit

EMBEDDED_FILE = "milvus.db"
"""The Milvus Lite file inside an index folder when no URI is given."""
MAX_TEXT_BYTES = 65_535
"""The longest Milvus ``VARCHAR`` (bytes, UTF-8): a longer passage is refused, never cut."""
MAX_ID_BYTES = 512
STORE_KINDS = {"exact": "FLAT", "hnsw": "HNSW"}
"""Our index kinds and the Milvus index types that implement them."""
INSERT_BATCH = 2048
"""Rows per insert request (keeps each gRPC message small)."""
INSTALL = "the Milvus backend needs pymilvus and milvus-lite: pip install 'uae[milvus]'"


class StoreConfig(BaseModel):
    """Where the collection lives.

    ``uri``: ``None`` for the embedded Milvus Lite file ``milvus.db`` inside the index folder, a path
    ending in ``.db`` for another embedded file, or ``http://host:19530`` for a Milvus server or cluster.
    """

    model_config = ConfigDict(extra="forbid")

    backend: str = "milvus"
    uri: str | None = None
    collection: str = Field("uae_passages", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
    token: str | None = Field(None, description="a cluster's credentials ('user:password' or an API key); never written to meta.json")
    replace: bool = Field(False, description="drop a collection of the same name first (otherwise it is refused)")


def milvus_client(uri: str, token: str | None = None):
    """A ``MilvusClient`` for ``uri`` (embedded file or server), or :class:`~uae.errors.MissingExtra`."""
    pymilvus = import_optional("pymilvus", INSTALL)
    if uri.endswith(".db"):
        import_optional("milvus_lite", INSTALL)
    return pymilvus.MilvusClient(uri, token=token or "")


def resolve_uri(folder: Path, uri: str | None) -> str:
    """The URI a folder's store lives at: a relative ``*.db`` name is inside the folder."""
    if uri is None:
        return str(folder / EMBEDDED_FILE)
    if uri.endswith(".db") and not os.path.isabs(uri):
        return str(folder / uri)
    return uri


class MilvusIndex:
    """Passages and their vectors in a Milvus collection: the same methods as :class:`~uae.retrieval.index.DenseIndex`.

    Search, add, remove and save take an internal lock, so one index can serve threads.
    """

    def __init__(self, client, collection: str, meta: IndexMeta, folder_uri: str | None = None, home: Path | None = None):
        self.client = client
        self.collection = collection
        self.meta = meta
        self.config = IndexConfig(kind=meta.kind, **{k: v for k, v in meta.params.items() if k in IndexConfig.model_fields})
        self._folder_uri = folder_uri
        self._home = home
        self._lock = threading.RLock()
        self._corpus: Corpus | None = None

    # -- building and editing -------------------------------------------------------------

    @classmethod
    def build(cls, vectors: np.ndarray, passages: Corpus | Sequence[Passage], model: str, fingerprint: str,
              folder: str | os.PathLike, store: StoreConfig | None = None, config: IndexConfig | None = None) -> MilvusIndex:
        """Create the collection and insert ``vectors`` (one row per passage, in order).

        Args:
            vectors: ``(n, dimension)`` unit-normalised embeddings.
            passages: the passages the vectors stand for.
            model: the model path recorded with the collection.
            fingerprint: the model's weight fingerprint, checked when the index is loaded.
            folder: the index folder (the embedded store's file goes there).
            store: where the collection lives; default the embedded file in ``folder``.
            config: ``kind`` (``exact`` or ``hnsw``) and the HNSW parameters.

        Raises:
            ValueError: an index kind Milvus does not implement here, or a collection of that name
                exists and ``store.replace`` is off.
        """
        store, config = store or StoreConfig(), config or IndexConfig()
        if config.kind not in STORE_KINDS:
            raise ValueError(f"the milvus backend builds {sorted(STORE_KINDS)} indexes, not {config.kind!r}")
        vectors = as_matrix(vectors, None, "passage vectors")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        uri = resolve_uri(folder, store.uri)
        client = milvus_client(uri, store.token)
        if client.has_collection(store.collection):
            if not store.replace:
                raise ValueError(f"{uri}: collection {store.collection!r} already exists; choose another --collection "
                                 "or pass --replace-collection to drop it")
            client.drop_collection(store.collection)
        params = {**config.model_dump(exclude={"kind"}), "collection": store.collection}
        meta = IndexMeta(model=model, fingerprint=fingerprint, dimension=vectors.shape[1], kind=config.kind, size=0,
                         params=params, backend="milvus")
        _create_collection(client, store.collection, meta, config)
        index = cls(client, store.collection, meta, folder_uri=store.uri, home=folder)
        index.add(list(passages), vectors)
        return index

    def add(self, passages: Sequence[Passage], vectors: np.ndarray) -> None:
        """Add passages and their vectors; all or nothing.

        Raises:
            DuplicatePassageError: an id is already in the collection or repeated in ``passages``.
            ValueError: the vectors do not match the passages or the dimension, or a text is too long.
        """
        passages = list(passages)
        vectors = as_matrix(vectors, self.meta.dimension, "passage vectors")
        if len(vectors) != len(passages):
            raise ValueError(f"{len(vectors)} vectors for {len(passages)} passages")
        rows = [_row(p, v) for p, v in zip(passages, vectors)]
        with self._lock:
            ids = [p.id for p in passages]
            clashes = sorted({pid for pid in ids if ids.count(pid) > 1} | set(self._present(ids)))
            if clashes:
                raise DuplicatePassageError(clashes)
            for start in range(0, len(rows), INSERT_BATCH):
                self.client.insert(self.collection, rows[start:start + INSERT_BATCH])
            self._changed(len(passages))

    def remove(self, passage_ids: Sequence[str]) -> int:
        """Remove passages by id; all or nothing.

        Raises:
            UnknownPassageError: an id is not in the collection (nothing is removed).
        """
        ids = list(dict.fromkeys(passage_ids))
        with self._lock:
            present = set(self._present(ids))
            unknown = [pid for pid in ids if pid not in present]
            if unknown:
                raise UnknownPassageError(unknown)
            if ids:
                self.client.delete(self.collection, ids=ids)
            self._changed(-len(ids))
        return len(ids)

    def tune(self, **search_params: int) -> None:
        """Change search-time parameters (``ef_search``, ``exact_scope_max``) without rebuilding."""
        unknown = sorted(set(search_params) - {"ef_search", "nprobe", "exact_scope_max"})
        if unknown:
            raise ValueError(f"only ef_search can change after building, not {unknown}")
        with self._lock:
            self.config = IndexConfig(**{**self.config.model_dump(), **search_params})
            self.meta = replace(self.meta, params={**self.meta.params, **search_params})

    # -- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.meta.size

    def __contains__(self, passage_id: object) -> bool:
        return isinstance(passage_id, str) and bool(self._present([passage_id]))

    def get(self, passage_id: str) -> Passage:
        """The passage with ``passage_id``; ``KeyError`` when it is not in the collection."""
        found = self.client.query(self.collection, ids=[passage_id], output_fields=["doc_id", "text"])
        if not found:
            raise KeyError(passage_id)
        return _passage(found[0])

    @property
    def passages(self) -> Corpus:
        """Every passage of the collection (read once, then kept until the next change)."""
        with self._lock:
            if self._corpus is None:
                iterator = self.client.query_iterator(self.collection, batch_size=4096, output_fields=["passage_id", "doc_id", "text"])
                rows: list[dict] = []
                while batch := iterator.next():
                    rows.extend(batch)
                iterator.close()
                self._corpus = Corpus(_passage(row) for row in rows)
            return self._corpus

    @property
    def tombstones(self) -> int:
        """Always 0: Milvus removes deleted rows itself."""
        return 0

    def has_scope(self, doc_id: str) -> bool:
        """Whether any passage of the collection carries ``doc_id``."""
        return bool(self.client.query(self.collection, filter=scope_filter(doc_id), output_fields=["passage_id"], limit=1))

    def search(self, query_vectors: np.ndarray, k: int, scopes: Sequence[str | None] | None = None) -> list[list[Hit]]:
        """Top-``k`` passages for each query vector; a query with a scope sees only its document (a filter on ``doc_id``).

        Args:
            query_vectors: ``(q, dimension)`` unit-normalised query embeddings.
            k: passages per query (fewer when the collection or the scope is smaller).
            scopes: one ``doc_id`` or ``None`` per query; an unknown scope returns no hits.

        Returns:
            One list of hits per query, best first.
        """
        return [[_hit(row) for row in rows] for rows in self._search_rows(query_vectors, k, scopes, [])]

    def search_passages(self, query_vectors: np.ndarray, k: int,
                        scopes: Sequence[str | None] | None = None) -> list[list[tuple[Hit, Passage]]]:
        """:meth:`search`, each hit with its passage read by the same search request: one version of the collection."""
        return [[(_hit(row), _passage({**row["entity"], "passage_id": _hit(row).passage_id})) for row in rows]
                for rows in self._search_rows(query_vectors, k, scopes, ["doc_id", "text"])]

    def _search_rows(self, query_vectors: np.ndarray, k: int, scopes: Sequence[str | None] | None,
                     output_fields: list[str]) -> list[list[dict]]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        query_vectors = as_matrix(query_vectors, self.meta.dimension, "query vectors")
        scopes = list(scopes) if scopes is not None else [None] * len(query_vectors)
        if len(scopes) != len(query_vectors):
            raise ValueError(f"{len(scopes)} scopes for {len(query_vectors)} queries")
        results: list[list[dict]] = [[] for _ in range(len(query_vectors))]
        with self._lock:
            if not len(self):
                return results
            for scope, members in group_by_scope(scopes).items():
                found = self.client.search(
                    self.collection, data=query_vectors[members].tolist(), anns_field="vector", limit=min(k, len(self)),
                    search_params=self._search_params(k), output_fields=output_fields,
                    **({"filter": scope_filter(scope)} if scope is not None else {}),
                )
                for member, hits in zip(members, found):
                    results[member] = list(hits)
        return results

    def _search_params(self, k: int) -> dict[str, Any]:
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.meta.kind == "hnsw":
            params["params"] = {"ef": max(self.config.ef_search, k)}
        return params

    def _present(self, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        return [row["passage_id"] for row in self.client.query(self.collection, ids=list(ids), output_fields=["passage_id"])]

    def _changed(self, delta: int) -> None:
        self._corpus = None
        self.meta = replace(self.meta, size=self.meta.size + delta)

    # -- persistence ----------------------------------------------------------------------

    def save(self, folder: str | os.PathLike) -> Path:
        """Flush the collection and write ``meta.json`` (the pointer to the store) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.client.flush(self.collection)
            self.meta = replace(self.meta, version=self.meta.version + 1)
            record = {**asdict(self.meta), "store": {"uri": self._uri_from(folder), "collection": self.collection}}
            atomic_write_json(folder / META_FILE, record, durable=True)
        return folder

    def _uri_from(self, folder: Path) -> str | None:
        """The store's URI as ``folder/meta.json`` must name it: relative only inside the folder it was opened from."""
        uri = self._folder_uri
        if self._home is None or folder.resolve() == self._home.resolve() or not (uri is None or uri.endswith(".db")):
            return uri
        return str(Path(resolve_uri(self._home, uri)).resolve())

    @classmethod
    def load(cls, folder: str | os.PathLike, token: str | None = None) -> MilvusIndex:
        """Open the collection an index folder points to; its model and size come from the collection itself.

        Args:
            folder: an index folder written by :meth:`save`.
            token: a cluster's credentials (default the ``MILVUS_TOKEN`` environment variable).

        Raises:
            DataError: ``meta.json`` names no store, or the collection is missing or was not written by uae.
        """
        folder = Path(folder)
        record = json.loads((folder / META_FILE).read_text())
        store = record.get("store") or {}
        if "collection" not in store:
            raise DataError(folder / META_FILE, None, "expected a 'store' with the collection of a milvus index")
        uri = resolve_uri(folder, store.get("uri"))
        client = milvus_client(uri, token or os.environ.get("MILVUS_TOKEN"))
        collection = store["collection"]
        if not client.has_collection(collection):
            raise DataError(folder / META_FILE, None, f"collection {collection!r} not found at {uri}")
        meta = _read_description(client, collection, uri)
        client.load_collection(collection)
        count = client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"]
        # The model binding comes from the collection; search-time settings (tune) and the version from the folder.
        meta = replace(meta, size=int(count), params={**meta.params, **record.get("params", {})},
                       version=int(record.get("version", 0)))
        return cls(client, collection, meta, folder_uri=store.get("uri"), home=folder)


# -- collection ---------------------------------------------------------------------------


def scope_filter(doc_id: str) -> str:
    """The Milvus boolean expression ``doc_id == "<doc_id>"``, the value escaped as a string literal."""
    return 'doc_id == "' + doc_id.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _create_collection(client, name: str, meta: IndexMeta, config: IndexConfig) -> None:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=_description(meta))
    schema.add_field("passage_id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)  # "" for no document (Milvus Lite has no NULL)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=meta.dimension)
    index_params = client.prepare_index_params()
    params = {"M": config.hnsw_m, "efConstruction": config.ef_construction} if config.kind == "hnsw" else {}
    index_params.add_index("vector", index_type=STORE_KINDS[config.kind], metric_type="IP", params=params)
    index_params.add_index("doc_id", index_type="INVERTED")
    client.create_collection(name, schema=schema, index_params=index_params, consistency_level="Strong")


def _description(meta: IndexMeta) -> str:
    fields = {"uae": 1, "model": meta.model, "fingerprint": meta.fingerprint, "dimension": meta.dimension,
              "kind": meta.kind, "params": meta.params, "version": meta.version}
    return json.dumps(fields, sort_keys=True)


def _read_description(client, name: str, uri: str) -> IndexMeta:
    description = client.describe_collection(name).get("description", "")
    try:
        fields = json.loads(description)
        if fields.get("uae") != 1:
            raise ValueError("not written by uae")
        return IndexMeta(model=fields["model"], fingerprint=fields["fingerprint"], dimension=int(fields["dimension"]),
                         kind=fields["kind"], size=0, params=fields.get("params", {}), version=int(fields.get("version", 0)),
                         backend="milvus")
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{uri}#{name}", None, f"expected a collection written by `uae index --backend milvus` ({err})") from None


def _row(passage: Passage, vector: np.ndarray) -> dict:
    text = passage.full_text
    for what, value, limit in (("id", passage.id, MAX_ID_BYTES), ("doc_id", passage.doc_id or "", MAX_ID_BYTES),
                               ("text", text, MAX_TEXT_BYTES)):
        if len(value.encode("utf-8")) > limit:
            raise ValueError(f"passage {passage.id[:80]!r}: {what} is longer than the {limit} bytes a Milvus VARCHAR holds")
    return {"passage_id": passage.id, "doc_id": passage.doc_id or "", "text": text, "vector": vector.tolist()}


def _hit(row: dict) -> Hit:
    """A Milvus search hit as a :class:`Hit` (the primary key comes back as ``id`` or under its own name)."""
    return Hit(row["id"] if "id" in row else row["passage_id"], float(row["distance"]))


def _passage(row: dict) -> Passage:
    return Passage(id=row["passage_id"], text=row["text"], doc_id=row.get("doc_id") or None)

