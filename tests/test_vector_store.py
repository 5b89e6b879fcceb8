"""The Milvus backend in embedded mode (Milvus Lite): the same answers and edits as the FAISS index."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the Milvus backend is the optional 'milvus' extra: pip install 'uae[milvus]'")
pytest.importorskip("milvus_lite", reason="the Milvus backend is the optional 'milvus' extra: pip install 'uae[milvus]'")

from uae.data.schema import Corpus, Passage  # noqa: E402
from uae.errors import ModelIndexMismatch  # noqa: E402
from uae.retrieval.index import DenseIndex, DuplicatePassageError, UnknownPassageError, load_index  # noqa: E402
from uae.retrieval.retriever import Retriever  # noqa: E402
from uae.retrieval.vector_store import MilvusIndex, StoreConfig  # noqa: E402

DIM, SIZE, DOCS = 16, 300, 12


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def corpus_and_vectors(seed: int = 0) -> tuple[Corpus, np.ndarray]:
    rng = np.random.default_rng(seed)
    corpus = Corpus(Passage(f"p{i:04d}", f"passage {i} of document {i % DOCS}", doc_id=f"d{i % DOCS}") for i in range(SIZE))
    return corpus, unit(rng.normal(size=(SIZE, DIM)))


@pytest.fixture
def built(tmp_path):
    corpus, vectors = corpus_and_vectors()
    store = MilvusIndex.build(vectors, corpus, model="m", fingerprint="f", folder=tmp_path / "ix")
    store.save(tmp_path / "ix")
    exact = DenseIndex.build(vectors, corpus, model="m", fingerprint="f")
    return store, exact, tmp_path / "ix"


def ids(hits):
    return [[h.passage_id for h in row] for row in hits]


def queries(count: int = 8, seed: int = 1) -> np.ndarray:
    return unit(np.random.default_rng(seed).normal(size=(count, DIM)))


def test_top10_equals_the_exact_faiss_index(built):
    store, exact, _ = built
    got, expected = store.search(queries(), 10), exact.search(queries(), 10)
    assert ids(got) == ids(expected)
    for row, reference in zip(got, expected):
        np.testing.assert_allclose([h.score for h in row], [h.score for h in reference], atol=1e-5)


def test_scoped_search_is_a_filter_on_doc_id(built):
    store, exact, _ = built
    scopes = ["d3", "d7", None, "nope"]
    got = store.search(queries(4), 5, scopes)
    assert ids(got) == ids(exact.search(queries(4), 5, scopes))
    assert all(pid.startswith("p") and int(pid[1:]) % DOCS == 3 for pid in ids(got)[0])
    assert got[3] == []
    assert store.has_scope("d3") and not store.has_scope("nope")


def test_add_and_remove_are_live_and_all_or_nothing(built):
    store, _, _ = built
    new = unit(np.eye(DIM, dtype=np.float32)[:2])
    odd = 'd"x\\'  # a quote and a backslash: the filter must escape them
    store.add([Passage("n1", "new one", doc_id="d0"), Passage("n2", "new two", doc_id=odd)], new)
    assert len(store) == SIZE + 2 and "n1" in store and store.get("n2").doc_id == odd
    assert ids(store.search(new[:1], 1)) == [["n1"]]
    assert ids(store.search(new[:1], 5, [odd])) == [["n2"]] and store.has_scope(odd)
    with pytest.raises(DuplicatePassageError):
        store.add([Passage("n3", "x"), Passage("p0001", "clash")], new)
    assert "n3" not in store
    with pytest.raises(UnknownPassageError):
        store.remove(["n1", "missing"])
    assert "n1" in store
    assert store.remove(["n1", "p0000"]) == 2
    assert "n1" not in store and len(store) == SIZE
    assert "n1" not in ids(store.search(new[:1], 10))[0]


def test_reload_from_disk_keeps_every_change(built):
    store, _, folder = built
    store.add([Passage("n1", "new one", doc_id="d0")], unit(np.ones((1, DIM))))
    store.remove(["p0005"])
    store.save(folder)
    store.save(folder.parent / "copy")  # another folder points to the same embedded store by its absolute path
    expected = store.search(queries(), 10, ["d0"] * 8)
    store.client.close()
    assert load_index(folder).meta.size == SIZE
    loaded = load_index(folder.parent / "copy")
    assert isinstance(loaded, MilvusIndex)
    assert len(loaded) == SIZE and loaded.meta.fingerprint == "f" and loaded.meta.model == "m"
    assert "p0005" not in loaded and loaded.get("n1").text == "new one"
    assert ids(loaded.search(queries(), 10, ["d0"] * 8)) == ids(expected)
    assert {p.id for p in loaded.passages} == ({f"p{i:04d}" for i in range(SIZE)} - {"p0005"}) | {"n1"}


def test_an_existing_collection_is_refused_unless_replaced(built, tmp_path):
    corpus, vectors = corpus_and_vectors()
    with pytest.raises(ValueError, match="already exists"):
        MilvusIndex.build(vectors, corpus, model="m", fingerprint="f", folder=tmp_path / "ix")
    replaced = MilvusIndex.build(vectors[:10], list(corpus)[:10], model="m", fingerprint="f", folder=tmp_path / "ix",
                                 store=StoreConfig(replace=True))
    assert len(replaced) == 10


def test_retriever_searches_the_store_and_refuses_another_model(tmp_path, tiny_encoder_dir):
    from conftest import build_tiny_encoder

    corpus = Corpus(Passage(f"p{i}", f"the tower of town {i} says value{i}", doc_id=f"d{i % 3}") for i in range(30))
    folder = tmp_path / "ix"
    built = Retriever.build(str(tiny_encoder_dir), corpus, progress=False, store=StoreConfig(), folder=folder)
    built.save(folder)
    exact = Retriever.build(str(tiny_encoder_dir), corpus, progress=False)
    question = ["what does the tower of town 4 say?"]
    built.index.client.close()
    loaded = Retriever.load(folder)
    assert ids(loaded.search(question, 10)) == ids(exact.search(question, 10))
    assert ids(loaded.search(question, 3, ["d1"])) == ids(exact.search(question, 3, ["d1"]))
    other = build_tiny_encoder(tmp_path / "other", seed=1)
    loaded.index.client.close()
    with pytest.raises(ModelIndexMismatch):
        Retriever.load(folder, model_path=str(other))


def test_cli_index_search_serve_and_eval_go_through_the_store(tmp_path, tiny_encoder_dir):
    import json

    from fastapi.testclient import TestClient
    from labeling_jobs import make_job, write_job
    from typer.testing import CliRunner

    from uae.cli import app
    from uae.data.beir import read_dataset
    from uae.pipeline import dense_run
    from uae.serving.server import ServerSettings, create_app

    corpus, queries, pools = make_job(n_queries=6, n_passages=24)
    data, _ = write_job(tmp_path, corpus, queries, pools)
    out = tmp_path / "ix"
    built = CliRunner().invoke(app, ["index", str(tiny_encoder_dir), str(data), "--out", str(out), "--backend", "milvus"])
    assert built.exit_code == 0, built.output
    assert json.loads((out / "meta.json").read_text())["backend"] == "milvus"
    again = CliRunner().invoke(app, ["index", str(tiny_encoder_dir), str(data), "--out", str(out), "--backend", "milvus"])
    assert again.exit_code == 2 and "already exists" in again.output
    found = CliRunner().invoke(app, ["search", str(out), "what does the river of town 0 say?", "-k", "3", "--json"])
    assert found.exit_code == 0, found.output
    exact = Retriever.build(str(tiny_encoder_dir), corpus, progress=False)
    expected = ids(exact.search(["what does the river of town 0 say?"], 3))[0]
    assert [hit["passage_id"] for hit in json.loads(found.stdout)[0]["hits"]] == expected

    dataset = read_dataset(data)
    asked = list(dataset.queries.values())
    from_store, encoded = dense_run(str(out), dataset, asked, 5), dense_run(str(tiny_encoder_dir), dataset, asked, 5)
    assert {q: list(run) for q, run in from_store.items()} == {q: list(run) for q, run in encoded.items()}
    for q, run in from_store.items():
        np.testing.assert_allclose(list(run.values()), list(encoded[q].values()), atol=1e-5)

    retriever = Retriever.load(out)
    with TestClient(create_app(retriever, ServerSettings(batching=False))) as client:
        hits = client.post("/search", json={"queries": [{"text": "what does the river of town 0 say?"}], "k": 3}).json()
        assert [h["id"] for h in hits["results"][0]["hits"]] == expected
        added = client.post("/passages", json={"passages": [{"id": "new", "text": "the river of town 0 says value0", "doc_id": "dz"}]})
        assert added.status_code == 200 and added.json()["corpus_size"] == len(corpus) + 1
        scoped = client.post("/search", json={"queries": [{"text": "river", "scope": "dz"}], "k": 3}).json()
        assert [h["id"] for h in scoped["results"][0]["hits"]] == ["new"]
        assert client.request("DELETE", "/passages", json={"ids": ["new"]}).json()["corpus_size"] == len(corpus)
