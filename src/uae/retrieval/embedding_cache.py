"""Corpus embeddings kept on disk, so a rerun in the same run folder does not encode again.

Encoding the corpus is the slow part of evaluating a run on a CPU, and a run folder that is
evaluated again, by a dev sweep or after a crash, encodes the same corpus with the same base
encoder and the same unchanged models every time. An entry is keyed by everything the vectors
depend on: the model's weights (:func:`uae.retrieval.encoders.model_fingerprint`), its maximum
sequence length, and the ids and texts (with titles) of the passages in their order; anything
else is a different entry, never a stale hit. Entries are written to a temporary file and
renamed, so a crash leaves no half entry.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from uae.data.schema import Corpus

EMBEDDINGS_FOLDER = "embeddings"
"""Where a run folder keeps its cache (``<run>/embeddings/``)."""


def corpus_digest(corpus: Corpus) -> str:
    """SHA-256 of the passages' ids and of the texts the encoder sees (title and text), in order."""
    digest = hashlib.sha256()
    for passage in corpus:
        digest.update(passage.id.encode())
        digest.update(b"\0")
        digest.update(passage.full_text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class EmbeddingCache:
    """A folder of ``<key>.npy`` files: the unit-normalised embeddings of one corpus by one model."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def key(self, fingerprint: str, corpus: Corpus, max_seq_length: int | None = None) -> str:
        """The entry name of ``corpus`` encoded by the model of ``fingerprint``
        (:func:`uae.retrieval.encoders.model_fingerprint`), truncated to ``max_seq_length``."""
        parts = [fingerprint, str(max_seq_length), corpus_digest(corpus)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    def load(self, key: str, n_passages: int) -> np.ndarray | None:
        """The vectors of entry ``key``, or None when there is none (or it does not hold ``n_passages`` rows)."""
        path = self.folder / f"{key}.npy"
        if not path.is_file():
            return None
        vectors = np.load(path)
        return vectors if vectors.ndim == 2 and len(vectors) == n_passages else None

    def save(self, key: str, vectors: np.ndarray) -> Path:
        """Write entry ``key`` as float32 (temporary file, then rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f"{key}.partial.npy"
        np.save(partial, np.asarray(vectors, dtype=np.float32))
        return partial.replace(self.folder / f"{key}.npy")
