"""Hybrid search: dense + BM25 by reciprocal rank fusion in Retriever, search, serve and eval; BM25 saved with the index."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from uae.cli import app
from uae.data.beir import write_dataset
from uae.data.schema import Corpus, Passage
from uae.data.synthetic import make_quickstart_dataset
from uae.retrieval.bm25 import BM25Index
from uae.retrieval.retriever import Retriever
from uae.serving.server import ServerSettings, create_app

TOPICS = ["river", "castle", "engine", "garden", "violin", "glacier", "harbour", "market"]
QUERIES = ["castle walls and towers", "the violin maker", "glacier ice in the valley"]


def _corpus() -> Corpus:
    return Corpus(Passage(f"{t}-{n}", f"the {t} story part {n} with {t} facts and {TOPICS[(i + n) % 8]} notes",
                          title=t.title(), doc_id=f"doc-{i % 2}")
                  for i, t in enumerate(TOPICS) for n in range(3))


@pytest.fixture(scope="module")
def built(tiny_encoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hybrid") / "index"
    Retriever.build(str(tiny_encoder_dir), _corpus(), progress=False).save(folder)
    return folder


def _rrf_by_hand(rankings, k):
    scores = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1 / (60 + rank)
    return sorted(scores.items(), key=lambda item: -item[1])[:k]


def test_hybrid_is_the_rrf_of_the_dense_and_bm25_rankings(built):
    retriever = Retriever.load(built)
    dense = retriever.search(QUERIES, k=100)
    lexical = BM25Index(_corpus()).search(QUERIES, 100)
    for query, fused, d, lex in zip(QUERIES, retriever.search(QUERIES, k=5, hybrid=True), dense, lexical):
        expected = _rrf_by_hand([[h.passage_id for h in d], [h.passage_id for h in lex]], 5)
        assert [h.score for h in fused] == pytest.approx([score for _, score in expected]), query
        assert {h.passage_id for h in fused[:3]} <= {pid for pid, _ in expected[:4]}  # ties may swap


def test_hybrid_honours_scopes_on_both_sides(built):
    retriever = Retriever.load(built)
    hits = retriever.search(QUERIES, k=20, scopes=["doc-1"] * 3, hybrid=True)
    assert all(retriever.index.get(h.passage_id).doc_id == "doc-1" for query_hits in hits for h in query_hits)
    assert all(len(query_hits) == 12 for query_hits in hits)
    assert retriever.search(QUERIES[:1], k=5, scopes=["nowhere"], hybrid=True) == [[]]


def test_bm25_is_saved_with_the_index_and_rebuilt_after_edits(built):
    assert (built / "bm25" / "uae_bm25.json").is_file()
    retriever = Retriever.load(built)
    saved = retriever.bm25()
    assert saved is retriever.bm25()  # reused while the passages do not change
    retriever.index.add([Passage("new-1", "a lighthouse keeper counts zeppelins", doc_id="doc-9")],
                        retriever.model.encode(["a lighthouse keeper counts zeppelins"], normalize_embeddings=True))
    assert retriever.bm25() is not saved
    assert retriever.search(["zeppelins"], k=1, hybrid=True)[0][0].passage_id == "new-1"


def test_cli_search_and_serve_offer_hybrid(built):
    result = CliRunner().invoke(app, ["search", str(built), QUERIES[0], "-k", "3", "--hybrid", "--json"])
    assert result.exit_code == 0, result.output
    retriever = Retriever.load(built)
    expected = retriever.search(QUERIES[:1], k=3, hybrid=True)[0]
    assert [h["passage_id"] for h in json.loads(result.stdout)[0]["hits"]] == [h.passage_id for h in expected]
    with TestClient(create_app(retriever, ServerSettings(hybrid=True))) as client:
        body = client.post("/search", json={"queries": [{"text": QUERIES[0]}], "k": 3}).json()
    assert [h["id"] for h in body["results"][0]["hits"]] == [h.passage_id for h in expected]


def test_eval_hybrid_adds_fused_systems_and_writes_trec_runs(tiny_encoder_dir, tmp_path):
    data = write_dataset(make_quickstart_dataset(n_entities=8), tmp_path / "data")
    result = CliRunner().invoke(app, ["eval", str(data), "--base-model", str(tiny_encoder_dir), "--hybrid", "--depth", "20",
                                      "--out", str(tmp_path / "eval"), "--trec-run", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"bm25", "base", "base+bm25", "teacher_oracle"} <= set(metrics)
    files = {p.name for p in (tmp_path / "runs").iterdir()}
    assert {"bm25.run", "base.run", "base+bm25.run", "teacher_oracle.run"} <= files
    first = (tmp_path / "runs" / "base+bm25.run").read_text().splitlines()[0].split()
    assert len(first) == 6 and first[1] == "Q0" and first[3] == "1" and first[5] == "base+bm25"
