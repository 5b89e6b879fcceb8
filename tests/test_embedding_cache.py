"""The run folder's corpus-embedding cache: a hit only for the same model weights and passages."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import uae.retrieval.retriever as retriever_module
from uae.data.schema import Corpus, Passage
from uae.retrieval.embedding_cache import EmbeddingCache
from uae.retrieval.encoders import model_fingerprint
from uae.retrieval.retriever import Retriever

PASSAGES = [
    Passage("p1", "the lighthouse keeper rows to the island every morning", title="Harbour"),
    Passage("p2", "wheat is milled into flour by the old water mill", title="Mill"),
    Passage("p3", "the choir sings in the cathedral on sundays", title="Town"),
]


class CountingEncode:
    """Wraps the retriever module's ``encode`` and counts the passages it encodes (queries go through it too)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.texts = 0
        self._encode = retriever_module.encode
        monkeypatch.setattr(retriever_module, "encode", self)

    def __call__(self, model, texts, *args, **kwargs):
        if kwargs.get("description") == "encoding passages":
            self.texts += len(texts)
        return self._encode(model, texts, *args, **kwargs)


def test_a_second_build_reads_the_vectors_and_searches_the_same(tiny_encoder_dir: Path, tmp_path: Path, monkeypatch) -> None:
    counter = CountingEncode(monkeypatch)
    cache = EmbeddingCache(tmp_path / "embeddings")
    first = Retriever.build(str(tiny_encoder_dir), Corpus(PASSAGES), progress=False, embeddings=cache)
    assert counter.texts == 3 and len(list(cache.folder.glob("*.npy"))) == 1
    second = Retriever.build(str(tiny_encoder_dir), Corpus(PASSAGES), progress=False, embeddings=cache)
    assert counter.texts == 3  # nothing encoded again
    query = ["who rows to the island?"]
    assert [h.passage_id for h in first.search(query, k=3)[0]] == [h.passage_id for h in second.search(query, k=3)[0]]
    reference = Retriever.build(str(tiny_encoder_dir), Corpus(PASSAGES), progress=False)  # no cache: encoded afresh
    assert [h.score for h in reference.search(query, k=3)[0]] == pytest.approx([h.score for h in second.search(query, k=3)[0]], abs=1e-6)


def test_changed_passages_or_weights_are_a_miss(tiny_encoder_dir: Path, tmp_path: Path, monkeypatch) -> None:
    counter = CountingEncode(monkeypatch)
    cache = EmbeddingCache(tmp_path / "embeddings")
    Retriever.build(str(tiny_encoder_dir), Corpus(PASSAGES), progress=False, embeddings=cache)
    edited = [PASSAGES[0], Passage("p2", PASSAGES[1].text, title="Another title"), PASSAGES[2]]
    Retriever.build(str(tiny_encoder_dir), Corpus(edited), progress=False, embeddings=cache)
    assert counter.texts == 6  # a changed title is a changed text for the encoder
    Retriever.build(str(tiny_encoder_dir), Corpus(PASSAGES[:2]), progress=False, embeddings=cache)
    assert counter.texts == 8
    retrained = tmp_path / "retrained"
    shutil.copytree(tiny_encoder_dir, retrained)
    weights = next(retrained.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x00\x01")  # the same model folder with other weights
    key = cache.key(model_fingerprint(str(retrained)), Corpus(PASSAGES))
    assert key != cache.key(model_fingerprint(str(tiny_encoder_dir)), Corpus(PASSAGES))
    assert cache.load(key, len(PASSAGES)) is None
    assert len(list(cache.folder.glob("*.npy"))) == 3 and not list(cache.folder.glob("*.partial.npy"))


def test_an_entry_of_the_wrong_shape_is_not_used(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.save("k", np.ones((2, 4), dtype=np.float32))
    assert cache.load("k", 3) is None
    assert cache.load("k", 2).shape == (2, 4)
