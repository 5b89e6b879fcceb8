"""Index kinds (exact, HNSW, IVF-PQ): recall, scoped search, live edits, crash-safe saves."""

from __future__ import annotations

import contextlib
import json
import os

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import uae.retrieval.index as index_module
from uae.data.schema import Passage
from uae.retrieval.index import DenseIndex, DuplicatePassageError, IndexConfig, UnknownPassageError

DIM = 32
CONFIGS = {
    "exact": IndexConfig(kind="exact"),
    "hnsw": IndexConfig(kind="hnsw", hnsw_m=16, ef_construction=64, ef_search=64),
    "ivfpq": IndexConfig(kind="ivfpq", nlist=16, pq_m=16, nbits=8, nprobe=16),
}


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """One OpenMP thread: on a shared, busy machine FAISS's spinning threads slow small builds tenfold."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(previous)


def _unit(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _passages(count: int, docs: int = 20, prefix: str = "p") -> list[Passage]:
    return [Passage(f"{prefix}{i}", f"text {i}", doc_id=f"d{i % docs}") for i in range(count)]


@pytest.fixture(scope="module")
def corpus():
    return _passages(2000), _unit(2000, seed=0)


@pytest.fixture(scope="module")
def built(corpus):
    passages, vectors = corpus
    return {kind: DenseIndex.build(vectors, passages, "m", "f", config=config) for kind, config in CONFIGS.items()}


def _ids(hits) -> list[list[str]]:
    return [[h.passage_id for h in query_hits] for query_hits in hits]


def _recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


@pytest.mark.parametrize("kind, floor", [("hnsw", 0.95), ("ivfpq", 0.7)])
def test_approximate_kinds_recall_against_exact(built, kind, floor):
    queries = _unit(100, seed=1)
    truth = _ids(built["exact"].search(queries, 10))
    found = _ids(built[kind].search(queries, 10))
    assert all(len(f) == 10 for f in found)
    assert _recall(found, truth) >= floor


def test_ivfpq_records_the_resolved_parameters(built):
    params = built["ivfpq"].meta.params
    assert (params["nlist"], params["pq_m"], params["nbits"]) == (16, 16, 8)
    assert built["hnsw"].faiss_index.hnsw.efConstruction == 64


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_small_scope_is_scored_exactly_for_every_kind(built, kind):
    queries = _unit(5, seed=2)
    exact = built["exact"].search(queries, 5, scopes=["d3"] * 5)
    hits = built[kind].search(queries, 5, scopes=["d3"] * 5)
    assert all(h.passage_id.startswith("p") and int(h.passage_id[1:]) % 20 == 3 for q in hits for h in q)
    if kind == "ivfpq":  # product-quantised scores: same scope, approximate order
        assert _recall(_ids(hits), _ids(exact)) >= 0.6
    else:
        assert _ids(hits) == _ids(exact)


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_large_scope_goes_through_a_faiss_selector(built, kind):
    index = built[kind]
    queries = _unit(5, seed=3)
    small_path = index.search(queries, 10, scopes=["d7"] * 5)
    index.tune(exact_scope_max=0)
    try:
        selector_path = index.search(queries, 10, scopes=["d7"] * 5)
    finally:
        index.tune(exact_scope_max=4096)
    assert all(int(h.passage_id[1:]) % 20 == 7 for q in selector_path for h in q)
    assert all(len(q) == 10 for q in selector_path)
    assert _recall(_ids(selector_path), _ids(small_path)) >= (1.0 if kind == "exact" else 0.7)


def test_unknown_scope_returns_nothing_for_every_kind(built):
    for index in built.values():
        assert index.search(_unit(1, seed=4), 5, scopes=["nope"]) == [[]]
        assert not index.has_scope("nope") and index.has_scope("d0")


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_add_then_remove_passages(corpus, kind):
    passages, vectors = corpus
    index = DenseIndex.build(vectors[:1000], passages[:1000], "m", "f", config=CONFIGS[kind])
    extra = _unit(3, seed=5)
    index.add([Passage("new0", "n0", doc_id="fresh"), Passage("new1", "n1", doc_id="fresh"), Passage("new2", "n2")], extra)
    assert len(index) == 1003 and "new1" in index
    assert [h.passage_id for h in index.search(extra[:1], 1, scopes=["fresh"])[0]] == ["new0"]
    if kind != "ivfpq":
        assert _ids(index.search(extra, 1)) == [["new0"], ["new1"], ["new2"]]

    gone = [f"p{i}" for i in range(0, 1000, 2)] + ["new1"]
    assert index.remove(gone) == len(gone)
    assert len(index) == 1003 - len(gone) and "new1" not in index
    assert index.tombstones == (len(gone) if kind == "hnsw" else 0)
    hits = [h.passage_id for q in index.search(_unit(50, seed=6), 20) for h in q]
    assert hits and not set(hits) & set(gone)
    assert [h.passage_id for h in index.search(extra[1:2], 5, scopes=["fresh"])[0]] == ["new0"]


def test_add_rejects_duplicates_and_changes_nothing(built, corpus):
    index = DenseIndex.build(corpus[1][:10], corpus[0][:10], "m", "f")
    with pytest.raises(DuplicatePassageError, match="'p3'"):
        index.add([Passage("x", "x"), Passage("p3", "again")], _unit(2, seed=7))
    with pytest.raises(DuplicatePassageError, match="'y'"):
        index.add([Passage("y", "y"), Passage("y", "twice")], _unit(2, seed=7))
    with pytest.raises(ValueError, match="dimension 32"):
        index.add([Passage("z", "z")], np.ones((1, 8), dtype=np.float32))
    assert len(index) == 10 and "x" not in index and index.faiss_index.ntotal == 10


def test_remove_unknown_id_changes_nothing(corpus):
    index = DenseIndex.build(corpus[1][:10], corpus[0][:10], "m", "f", config=CONFIGS["hnsw"])
    with pytest.raises(UnknownPassageError, match="'ghost'"):
        index.remove(["p1", "ghost"])
    assert len(index) == 10 and "p1" in index and index.tombstones == 0


def test_search_rejects_bad_queries(built):
    with pytest.raises(ValueError, match="k must be at least 1"):
        built["exact"].search(_unit(1, seed=8), 0)
    with pytest.raises(ValueError, match="dimension 32"):
        built["exact"].search(np.ones((1, 3), dtype=np.float32), 5)
    with pytest.raises(ValueError, match="2 scopes for 1 queries"):
        built["exact"].search(_unit(1, seed=8), 5, scopes=["d1", "d2"])


def test_ivfpq_needs_enough_training_vectors():
    with pytest.raises(ValueError, match="ivfpq needs at least 256 vectors"):
        DenseIndex.build(_unit(100, seed=9), _passages(100), "m", "f", config=IndexConfig(kind="ivfpq", nlist=2))
    with pytest.raises(ValueError, match="must divide the dimension 32"):
        DenseIndex.build(_unit(300, seed=9), _passages(300), "m", "f", config=IndexConfig(kind="ivfpq", nlist=2, pq_m=5))


def test_tune_changes_only_search_parameters(built):
    index = built["hnsw"]
    with pytest.raises(ValueError, match="hnsw_m"):
        index.tune(hnsw_m=8)
    index.tune(ef_search=200)
    assert index.config.ef_search == 200 and index.meta.params["ef_search"] == 200
    index.tune(ef_search=64)


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_save_load_keeps_edits_and_tombstones(corpus, kind, tmp_path):
    passages, vectors = corpus
    index = DenseIndex.build(vectors[:600], passages[:600], "m", "f", config=CONFIGS[kind])
    index.remove(["p0", "p5"])
    index.add([Passage("late", "late", doc_id="d1")], _unit(1, seed=10))
    loaded = DenseIndex.load(index.save(tmp_path / "ix"))
    assert loaded.meta == index.meta and loaded.meta.version == 1
    assert len(loaded) == 599 and loaded.tombstones == index.tombstones
    queries = _unit(10, seed=11)
    assert loaded.search(queries, 10) == index.search(queries, 10)
    assert loaded.search(queries, 3, scopes=["d1"] * 10) == index.search(queries, 3, scopes=["d1"] * 10)
    loaded.add([Passage("later", "later")], _unit(1, seed=12))  # rows continue after a reload
    assert "later" in loaded and len(loaded) == 600


def _crash_faiss_write(monkeypatch):
    @contextlib.contextmanager
    def half_written(path, durable=False):  # the index file is the only one index.py writes through atomic_path
        with open(path.with_name(path.name + ".tmp"), "wb") as handle:
            handle.write(b"\0" * 10)
        raise OSError("disk full")
        yield

    monkeypatch.setattr(index_module, "atomic_path", half_written)


def _crash_passages_write(monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(index_module, "write_table", fail)


def _crash_meta_commit(monkeypatch):
    real_replace = os.replace

    def fail_on_meta(source, target):
        if str(target).endswith("meta.json"):
            raise OSError("power cut")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", fail_on_meta)


@pytest.mark.parametrize("crash", [_crash_faiss_write, _crash_passages_write, _crash_meta_commit])
@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_a_crash_mid_save_leaves_the_old_index_loadable(corpus, tmp_path, monkeypatch, crash, kind):
    passages, vectors = corpus
    folder = tmp_path / "ix"
    index = DenseIndex.build(vectors[:300], passages[:300], "m", "f", config=CONFIGS[kind])
    index.save(folder)
    queries = _unit(5, seed=13)
    before = index.search(queries, 5)

    index.remove(["p1", "p2"])
    index.add([Passage("new", "new")], _unit(1, seed=14))
    with monkeypatch.context() as patch:
        crash(patch)
        with pytest.raises(OSError):
            index.save(folder)

    old = DenseIndex.load(folder)
    assert old.meta.version == 1 and len(old) == 300 and "p1" in old and "new" not in old
    assert old.search(queries, 5) == before

    index.save(folder)  # the next save succeeds and cleans up what the crash left
    new = DenseIndex.load(folder)
    assert new.meta.version == 2 and len(new) == 299 and "new" in new and "p1" not in new
    assert sorted(os.listdir(folder)) == ["index-000002.faiss", "meta.json", "passages-000002.parquet"]


def test_save_into_a_folder_with_a_newer_version_never_overwrites_its_files(corpus, tmp_path):
    passages, vectors = corpus
    first = DenseIndex.build(vectors[:50], passages[:50], "m", "f")
    second = DenseIndex.build(vectors[:60], passages[:60], "m", "f")
    first.save(tmp_path)
    first.save(tmp_path)
    second.save(tmp_path)
    assert second.meta.version == 3 and len(DenseIndex.load(tmp_path)) == 60


def test_legacy_folder_without_rows_still_loads(corpus, tmp_path):
    passages, vectors = corpus
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors[:20])
    faiss.write_index(flat, str(tmp_path / "index.faiss"))
    table = pa.table({"passage_id": [p.id for p in passages[:20]], "doc_id": [p.doc_id for p in passages[:20]],
                      "text": [p.text for p in passages[:20]]})
    pq.write_table(table, tmp_path / "passages.parquet")
    (tmp_path / "meta.json").write_text(json.dumps({"model": "m", "fingerprint": "f", "dimension": DIM, "kind": "exact", "size": 20}))
    legacy = DenseIndex.load(tmp_path)
    assert _ids(legacy.search(vectors[3:4], 1)) == [["p3"]]
    legacy.remove(["p3"])
    legacy.save(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["index-000001.faiss", "meta.json", "passages-000001.parquet"]
    assert len(DenseIndex.load(tmp_path)) == 19


def test_load_refuses_inconsistent_folders(corpus, tmp_path):
    passages, vectors = corpus
    DenseIndex.build(vectors[:20], passages[:20], "m", "f").save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "size": 21}))
    with pytest.raises(ValueError, match="meta.json says 21 passages"):
        DenseIndex.load(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "surprise": 1}))
    with pytest.raises(ValueError, match="expected the fields of IndexMeta"):
        DenseIndex.load(tmp_path)


def test_cli_index_builds_the_chosen_kind(tiny_encoder_dir, tmp_path):
    from typer.testing import CliRunner

    from uae.cli import app

    data = tmp_path / "data"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"c{i}", "text": f"passage number {i}"}) + "\n" for i in range(30)))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": "which number", "answers": ["3"]}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tc3\t1\n")
    out = tmp_path / "ix"
    result = CliRunner().invoke(app, ["index", str(tiny_encoder_dir), str(data), "--out", str(out), "--kind", "hnsw",
                                      "--hnsw-m", "8", "--ef-search", "40"])
    assert result.exit_code == 0, result.output
    loaded = DenseIndex.load(out)
    assert loaded.meta.kind == "hnsw" and loaded.config.hnsw_m == 8 and loaded.config.ef_search == 40 and len(loaded) == 30
    bad = CliRunner().invoke(app, ["index", str(tiny_encoder_dir), str(data), "--out", str(out), "--kind", "annoy"])
    assert bad.exit_code == 2 and "kind" in bad.output
