"""Encoding a corpus on a Ray cluster, in resumable shards, then indexing it (FAISS or the vector store).

The corpus is cut into shards of ``shard_size`` passages in corpus order. A pool of Ray actors
(one encoder each, loaded once) encodes one shard at a time; the driver writes each finished
shard as ``shards/shard-NNNNN.parquet`` under the index folder (``passage_id`` and ``embedding``;
a temporary name, then a rename), so a killed job loses only the shards in flight and a rerun
encodes only the missing ones. ``shards/manifest.json`` records the model, its fingerprint, the
shard size and a hash of the passage ids: a rerun with anything else is refused
(:class:`~uae.errors.ManifestMismatch`) rather than mixing embeddings of two models. Only the
driver touches the folder, so workers need no shared file system (as in
:mod:`uae.labeling.ray`). When every shard is on disk the vectors are read back in corpus order
and indexed by :func:`uae.retrieval.retriever.build_index`, into FAISS or the vector database.

This is Ray Core (an actor pool over shard numbers) rather than Ray Data's ``map_batches``: the
unit of resumption must be a file the driver can see finished, and an actor pool over shard ids
gives exactly that with the least machinery.

:func:`encode_corpus_local` runs the same shards, manifest and resumption in this process (one
encoder, no Ray), so a job started on one can be finished on the other.

Install: ``pip install 'uae[ray]'``. One machine (a fresh local Ray instance)::

    uae index model/ DATA --out index --ray --workers 4

A cluster (``ray start`` on every node, the model on shared storage or the hub)::

    uae index /shared/model DATA --out index --ray --ray-address auto --gpus-per-worker 1
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from uae.data.schema import Corpus, Passage
from uae.data.tables import read_table, write_table
from uae.errors import ManifestMismatch, import_optional
from uae.io import atomic_write_json
from uae.progress import progress_bar
from uae.ray_actors import start_actors

INSTALL_HINT = "encoding with --ray needs Ray: pip install 'uae[ray]'"
SHARDS_DIR = "shards"
MANIFEST = "manifest.json"
SHARD_SCHEMA = pa.schema([("passage_id", pa.string()), ("embedding", pa.list_(pa.float32()))])


class EncodeWorker:
    """One encoder on one Ray worker: encodes whole shards sent by the driver."""

    def __init__(self, model_path: str, max_seq_length: int | None, batch_size: int):
        from uae.retrieval.encoders import load_encoder

        self.model = load_encoder(model_path, max_seq_length=max_seq_length)
        self.batch_size = batch_size

    def encode(self, number: int, texts: list[str]) -> tuple[int, np.ndarray]:
        """Shard ``number``'s unit-normalised float32 embeddings."""
        from uae.retrieval.encoders import encode

        return number, encode(self.model, texts, self.batch_size, progress=False)


def shard_path(folder: str | os.PathLike, number: int) -> Path:
    """Where shard ``number`` of an index folder lives."""
    return Path(folder) / SHARDS_DIR / f"shard-{number:05d}.parquet"


def shard_manifest(model_path: str, fingerprint: str, passages: Sequence[Passage], shard_size: int,
                   max_seq_length: int | None) -> dict[str, Any]:
    """What the shards of one job were encoded with; a rerun must match it to reuse them."""
    ids = hashlib.sha256("\n".join(p.id for p in passages).encode("utf-8")).hexdigest()
    return {"model": model_path, "fingerprint": fingerprint, "passages": len(passages), "ids_sha256": ids,
            "shard_size": shard_size, "max_seq_length": max_seq_length}


def check_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` for a new job, or refuse a folder whose shards were made otherwise.

    Raises:
        ManifestMismatch: ``folder/shards`` holds shards of another model, corpus or shard size.
    """
    path = folder / SHARDS_DIR / MANIFEST
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != manifest:
            changed = sorted(k for k in manifest if stored.get(k) != manifest[k])
            raise ManifestMismatch(f"{path.parent} holds shards encoded with other settings ({', '.join(changed)}); "
                                   "remove that folder or index into another --out")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, manifest, durable=True)


def write_shard(folder: Path, number: int, passages: Sequence[Passage], vectors: np.ndarray) -> Path:
    """Write one shard (temporary name, then rename)."""
    dimension = vectors.shape[1]
    embeddings = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dimension)
    table = pa.table({"passage_id": [p.id for p in passages], "embedding": embeddings.cast(pa.list_(pa.float32()))},
                     schema=SHARD_SCHEMA)
    return write_table(table, shard_path(folder, number), durable=True)


def read_shards(folder: Path, passages: Sequence[Passage], shard_size: int) -> np.ndarray:
    """Every shard's embeddings in corpus order, checked against the passage ids.

    Raises:
        uae.errors.DataError: a shard is missing, unreadable, or holds other ids than its passages.
    """
    from uae.errors import DataError

    blocks = []
    for number, start in enumerate(range(0, len(passages), shard_size)):
        path = shard_path(folder, number)
        table = read_table(path, SHARD_SCHEMA)
        expected = [p.id for p in passages[start:start + shard_size]]
        if table["passage_id"].to_pylist() != expected:
            raise DataError(path, None, f"expected the ids of passages {start}..{start + len(expected) - 1} of the corpus")
        blocks.append(np.asarray(table["embedding"].combine_chunks().flatten().to_numpy(), dtype=np.float32).reshape(len(expected), -1))
    return np.concatenate(blocks) if blocks else np.empty((0, 0), dtype=np.float32)


class LocalPool:
    """One encoder in this process, one shard at a time: the same shards and resumption without Ray."""

    def __init__(self, model_path: str, max_seq_length: int | None, batch_size: int):
        self.worker = EncodeWorker(model_path, max_seq_length, batch_size)
        self.size = 1
        self._queue: deque[tuple[int, list[str]]] = deque()

    def submit(self, number: int, texts: list[str]) -> None:
        self._queue.append((number, texts))

    def busy(self) -> int:
        return len(self._queue)

    def next_done(self) -> tuple[int, np.ndarray]:
        return self.worker.encode(*self._queue.popleft())


class RayPool:
    """Ray actors, one encoder each; at most one shard in flight per actor."""

    def __init__(self, ray: Any, actors: list[Any]):
        self.ray, self.idle, self.size = ray, deque(actors), len(actors)
        self._in_flight: dict[Any, Any] = {}

    def submit(self, number: int, texts: list[str]) -> None:
        actor = self.idle.popleft()
        self._in_flight[actor.encode.remote(number, texts)] = actor

    def busy(self) -> int:
        return len(self._in_flight)

    def next_done(self) -> tuple[int, np.ndarray]:
        [done], _ = self.ray.wait(list(self._in_flight), num_returns=1)
        self.idle.append(self._in_flight.pop(done))
        return self.ray.get(done)


def encode_corpus_ray(
    model_path: str,
    corpus: Corpus,
    folder: str | os.PathLike,
    shard_size: int = 10_000,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float = 1.0,
    batch_size: int = 64,
    max_seq_length: int | None = None,
    address: str | None = None,
    init_options: dict[str, Any] | None = None,
    progress: bool = True,
    on_shard: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Encode ``corpus`` over Ray workers into resumable shards under ``folder``; return every vector in corpus order.

    Args:
        model_path: the encoder (path, hub name or ``minilm``), loaded once per worker.
        corpus: the passages, encoded in this order.
        folder: the index folder; shards go to ``folder/shards``.
        shard_size: passages per shard (the unit of scheduling and of resumption).
        workers: number of actors; default one per GPU, else one per ``cpus_per_worker`` CPUs.
        gpus_per_worker: GPUs per actor; default 1 when the cluster has GPUs, else 0.
        cpus_per_worker: CPUs per actor.
        batch_size: texts per encoder forward pass.
        max_seq_length: truncate texts to this many tokens (default: the model's own).
        address: Ray address (``auto``, ``ray://host:10001``); ``None`` starts a fresh local
            instance, unless Ray is already initialised in this process.
        init_options: further ``ray.init`` arguments (``num_cpus``, ``runtime_env``, ...).
        progress: show a progress bar (passages/s and ETA, advancing per finished shard).
        on_shard: called with each shard number once it is on disk (tests use it to stop a job).

    Raises:
        ValueError: ``shard_size`` below 1, or more GPUs per worker than the cluster has.
        ManifestMismatch: the folder holds shards of another model, corpus or shard size.
    """
    ray = import_optional("ray", INSTALL_HINT)

    def ray_pool(pending: int) -> RayPool:
        return RayPool(ray, start_actors(ray, EncodeWorker, (model_path, max_seq_length, batch_size), workers,
                                         gpus_per_worker, cpus_per_worker, pending))

    started_here = False

    def start() -> None:
        nonlocal started_here
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, **(init_options or {}))

    try:
        return encode_in_shards(model_path, corpus, folder, shard_size, max_seq_length, ray_pool, progress, on_shard,
                                before=start, where="Ray workers")
    finally:
        if started_here:
            ray.shutdown()


def encode_corpus_local(model_path: str, corpus: Corpus, folder: str | os.PathLike, shard_size: int = 10_000,
                        batch_size: int = 64, max_seq_length: int | None = None, progress: bool = True,
                        on_shard: Callable[[int], None] | None = None) -> np.ndarray:
    """:func:`encode_corpus_ray` in this process: the same shards, manifest and resumption, no Ray."""
    return encode_in_shards(model_path, corpus, folder, shard_size, max_seq_length,
                            lambda pending: LocalPool(model_path, max_seq_length, batch_size), progress, on_shard,
                            where="this process")


def encode_in_shards(model_path: str, corpus: Corpus, folder: str | os.PathLike, shard_size: int, max_seq_length: int | None,
                     make_pool: Callable[[int], LocalPool | RayPool], progress: bool = True,
                     on_shard: Callable[[int], None] | None = None, before: Callable[[], None] | None = None,
                     where: str = "workers") -> np.ndarray:
    """Encode the shards not on disk yet with the pool ``make_pool(pending)`` builds; return every vector in corpus order.

    Raises:
        ValueError: ``shard_size`` below 1.
        ManifestMismatch: the folder holds shards of another model, corpus or shard size.
    """
    from uae.retrieval.encoders import model_fingerprint, resolve_encoder

    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    folder = Path(folder)
    passages = list(corpus)
    check_manifest(folder, shard_manifest(resolve_encoder(model_path), model_fingerprint(model_path), passages,
                                          shard_size, max_seq_length))
    shards = [passages[start:start + shard_size] for start in range(0, len(passages), shard_size)]
    pending = [number for number in range(len(shards)) if not shard_path(folder, number).is_file()]
    if pending:
        if before is not None:
            before()
        pool = make_pool(len(pending))
        reused = len(shards) - len(pending)
        description = f"encoding on {pool.size} {where}" + (f" ({reused} shards reused)" if reused else "")
        with progress_bar(sum(len(shards[n]) for n in pending), description, "passages", progress) as advance:
            _run_shards(pool, pending, shards, folder, advance, on_shard)
    return read_shards(folder, passages, shard_size)


def _run_shards(pool: LocalPool | RayPool, pending: list[int], shards: list[list[Passage]], folder: Path,
                advance: Callable[..., None], on_shard: Callable[[int], None] | None) -> None:
    """Keep every worker of ``pool`` busy with one shard until none is left; write each shard as it comes back."""
    queue = deque(pending)

    def submit() -> None:
        number = queue.popleft()
        pool.submit(number, [p.full_text for p in shards[number]])

    while queue and pool.busy() < pool.size:
        submit()
    while pool.busy():
        number, vectors = pool.next_done()
        write_shard(folder, number, shards[number], vectors)
        advance(len(shards[number]))
        if on_shard is not None:
            on_shard(number)
        if queue:
            submit()
