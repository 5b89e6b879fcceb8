"""The HTTP service: results, bad requests, live edits, statistics, micro-batching, the model binding."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest
import uvicorn
from conftest import build_tiny_encoder
from fastapi.testclient import TestClient
from live_server import serve_in_thread
from typer.testing import CliRunner

from uae.cli import app as cli_app
from uae.data.schema import Corpus, Passage
from uae.retrieval.encoders import encode
from uae.retrieval.index import DenseIndex
from uae.retrieval.retriever import Retriever
from uae.serving.server import MicroBatcher, ServerSettings, create_app

TOPICS = ["river", "castle", "engine", "garden", "violin", "glacier"]
SETTINGS = ServerSettings(max_queries=4, max_query_chars=50, max_k=20, max_passages=3, max_wait_ms=2)


def _corpus() -> Corpus:
    return Corpus(
        Passage(f"{topic}-{n}", f"the {topic} story part {n} with {topic} facts", doc_id=f"doc-{i % 3}")
        for i, topic in enumerate(TOPICS)
        for n in range(3)
    )


@pytest.fixture(scope="module")
def index_dir(tiny_encoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served") / "index"
    Retriever.build(str(tiny_encoder_dir), _corpus(), progress=False).save(folder)
    return folder


@pytest.fixture
def retriever(index_dir, tiny_encoder_dir):
    return Retriever.load(index_dir, model_path=str(tiny_encoder_dir))


@pytest.fixture
def client(retriever):
    with TestClient(create_app(retriever, SETTINGS)) as test_client:
        yield test_client


def _search(client, *queries, k=3, **extra):
    return client.post("/search", json={"queries": [{"text": q} if isinstance(q, str) else q for q in queries], "k": k, **extra})


def test_search_returns_what_the_retriever_returns(client, retriever):
    queries = [{"text": "river facts"}, {"text": "engine story", "scope": "doc-2"}, {"text": "violin", "scope": "doc-1"}]
    response = _search(client, *queries, k=4)
    assert response.status_code == 200
    body = response.json()
    expected = retriever.search([q["text"] for q in queries], 4, [q.get("scope") for q in queries])
    for result, hits in zip(body["results"], expected):
        assert [h["id"] for h in result["hits"]] == [h.passage_id for h in hits]
        assert [h["score"] for h in result["hits"]] == pytest.approx([h.score for h in hits], abs=1e-5)
    assert all(h["doc_id"] == "doc-2" for h in body["results"][1]["hits"])
    assert body["results"][0]["hits"][0]["text"] == retriever.index.get(body["results"][0]["hits"][0]["id"]).full_text
    assert body["fingerprint"] == retriever.index.meta.fingerprint


@pytest.mark.parametrize(
    "payload, status, message",
    [
        ({"queries": [{"text": ""}]}, 422, "queries[0].text: must not be empty"),
        ({"queries": [{"text": "ok"}, {"text": "   "}]}, 422, "queries[1].text: must not be empty"),
        ({"queries": [{"text": "x" * 51}]}, 422, "queries[0].text: String should have at most 50 characters"),
        ({"queries": [{"text": "ok"}], "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"queries": [{"text": "ok"}], "k": 21}, 422, "k: Input should be less than or equal to 20"),
        ({"queries": [{"text": "ok"}], "k": "ten"}, 422, "k: Input should be a valid integer"),
        ({"queries": [{"text": "q"}] * 5}, 422, "queries: List should have at most 4 items"),
        ({"queries": []}, 422, "queries: List should have at least 1 item"),
        ({"queries": [{"text": "ok", "scope": "doc-9"}]}, 404, "queries[0].scope: unknown scope 'doc-9'"),
        ({"queries": [{"text": "ok"}], "top": 3}, 422, "top: Extra inputs are not permitted"),
        ({"query": "ok"}, 422, "queries: Field required"),
        ([1, 2], 422, "request body: Input should be a valid dictionary"),
    ],
)
def test_bad_search_requests_get_a_4xx_that_says_what_is_wrong(client, payload, status, message):
    response = client.post("/search", json=payload)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_malformed_json_gets_a_clear_422(client):
    response = client.post("/search", content=b'{"queries": [', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("malformed JSON in the request body at character")


def test_missing_body_gets_a_clear_422(client):
    response = client.post("/search")
    assert response.status_code == 422
    assert "request body" in response.json()["detail"]


def test_embed_returns_the_models_unit_vectors(client, retriever):
    response = client.post("/embed", json={"texts": ["river facts", "a violin"]})
    assert response.status_code == 200
    body = response.json()
    expected = encode(retriever.model, ["river facts", "a violin"], progress=False)
    assert body["dimension"] == expected.shape[1] == len(body["embeddings"][0])
    np.testing.assert_allclose(np.asarray(body["embeddings"]), expected, atol=1e-5)
    assert client.post("/embed", json={"texts": []}).status_code == 422
    assert "texts[0]" in client.post("/embed", json={"texts": [" "]}).json()["detail"]


def test_add_search_and_remove_passages(client):
    new = {"id": "new-1", "text": "a lighthouse keeper counts ships at night", "doc_id": "doc-new"}
    added = client.post("/passages", json={"passages": [new]})
    assert added.status_code == 200 and added.json() == {"changed": 1, "corpus_size": 19, "persisted": False}
    hits = _search(client, {"text": new["text"], "scope": "doc-new"}).json()["results"][0]["hits"]
    assert [h["id"] for h in hits] == ["new-1"]

    again = client.post("/passages", json={"passages": [new]})
    assert again.status_code == 409 and "'new-1'" in again.json()["detail"]
    too_many = client.post("/passages", json={"passages": [{"id": f"x{i}", "text": "t"} for i in range(4)]})
    assert too_many.status_code == 422 and "at most 3 items" in too_many.json()["detail"]

    removed = client.request("DELETE", "/passages", json={"ids": ["new-1", "river-0"]})
    assert removed.status_code == 200 and removed.json()["changed"] == 2 and removed.json()["corpus_size"] == 17
    assert _search(client, {"text": "x", "scope": "doc-new"}).status_code == 404
    found = [h["id"] for r in _search(client, "river", k=20).json()["results"] for h in r["hits"]]
    assert "river-0" not in found and len(found) == 17
    unknown = client.request("DELETE", "/passages", json={"ids": ["river-1", "ghost"]})
    assert unknown.status_code == 404 and "'ghost'" in unknown.json()["detail"]
    assert client.get("/healthz").json() == {"status": "ok", "corpus_size": 17}


def test_edits_are_persisted_when_asked(retriever, tmp_path):
    settings = ServerSettings(persist_dir=tmp_path / "live")
    with TestClient(create_app(retriever, settings)) as client:
        response = client.post("/passages", json={"passages": [{"id": "kept", "text": "kept after restart"}]})
        assert response.json()["persisted"] is True
    reloaded = DenseIndex.load(tmp_path / "live")
    assert "kept" in reloaded and len(reloaded) == 19


def test_stats_report_size_model_counts_and_latency(client, retriever):
    _search(client, "river")
    _search(client, "castle")
    client.post("/search", json={"queries": []})
    stats = client.get("/stats").json()
    assert stats["corpus_size"] == 18 and stats["tombstones"] == 0
    assert stats["model"]["fingerprint"] == retriever.index.meta.fingerprint
    assert stats["requests"]["POST /search"] == {"200": 2, "422": 1}
    assert set(stats["latency_ms"]["POST /search"]) == {"p50", "p95", "p99", "count"}
    assert stats["latency_ms"]["POST /search"]["count"] == 3
    assert stats["batching"]["search_queries"] == 2 and stats["batching"]["encoder_calls"] == 2


def test_openapi_schema_shows_the_endpoints_and_limits(client):
    schema = client.get("/openapi.json").json()
    assert {"/search", "/embed", "/passages", "/healthz", "/stats"} <= set(schema["paths"])
    assert {"post", "delete"} <= set(schema["paths"]["/passages"])
    assert schema["components"]["schemas"]["SearchRequest"]["properties"]["k"]["maximum"] == 20


def test_micro_batcher_groups_concurrent_callers_and_keeps_their_order():
    batches: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        batches.append(items)
        time.sleep(0.01)
        return [2 * i for i in items]

    async def scenario():
        batcher = MicroBatcher(double, max_batch=8, max_wait_s=0.02)
        results = await asyncio.gather(*(batcher.submit([i, 100 + i]) for i in range(20)))
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert results == [[2 * i, 2 * (100 + i)] for i in range(20)]
    assert len(batches) < 20 and max(len(b) for b in batches) <= 8
    assert sorted(i for b in batches for i in b) == sorted([*range(20), *range(100, 120)])


def test_micro_batcher_hands_errors_to_callers_and_carries_on():
    def fragile(items: list[str]) -> list[str]:
        if "boom" in items:
            raise RuntimeError("encoder failed")
        return [s.upper() for s in items]

    async def scenario():
        batcher = MicroBatcher(fragile, max_batch=4, max_wait_s=0.001)
        with pytest.raises(RuntimeError, match="encoder failed"):
            await batcher.submit(["boom"])
        after = await batcher.submit(["fine"])
        await batcher.stop()
        return after

    assert asyncio.run(scenario()) == ["FINE"]


async def _fire(url: str, count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        responses = await asyncio.gather(
            *(http.post("/search", json={"queries": [{"text": f"{TOPICS[i % 6]} question {i}"}], "k": 2}) for i in range(count))
        )
    return [r.status_code for r in responses]


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_requests_share_encoder_calls_only_with_batching(retriever, batching):
    original = retriever.model.encode

    def slow_encode(*args, **kwargs):  # keeps the worker busy so that requests pile up behind it
        time.sleep(0.05)
        return original(*args, **kwargs)

    retriever.model.encode = slow_encode
    app = create_app(retriever, ServerSettings(batching=batching, max_batch=64, max_wait_ms=5))
    server, thread, url = serve_in_thread(app)
    try:
        statuses = asyncio.run(_fire(url, 24))
        stats = httpx.get(f"{url}/stats").json()["batching"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert statuses == [200] * 24
    assert stats["search_queries"] == 24
    if batching:
        assert stats["encoder_calls"] <= 12 and stats["search_batches"] == stats["encoder_calls"]
    else:
        assert stats["encoder_calls"] == 24


def test_serve_refuses_a_model_that_did_not_build_the_index(index_dir, tmp_path, monkeypatch):
    other_model = build_tiny_encoder(tmp_path / "other", seed=1)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server must not start"))
    result = CliRunner().invoke(cli_app, ["serve", str(other_model), "--index", str(index_dir)])
    assert result.exit_code == 2
    assert "fingerprint" in result.output and "rebuild the index" in result.output


def test_serve_starts_uvicorn_with_the_matching_model(index_dir, tiny_encoder_dir, monkeypatch):
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app, **options))
    result = CliRunner().invoke(cli_app, ["serve", str(tiny_encoder_dir), "--index", str(index_dir), "--port", "8765",
                                          "--no-batching"])
    assert result.exit_code == 0, result.output
    assert started["host"] == "127.0.0.1" and started["port"] == 8765
    assert started["app"].state.settings.batching is False and len(started["app"].state.retriever.index) == 18
