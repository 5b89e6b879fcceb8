"""The HTTP service under hostile and careless requests (issue 16): bounded fields and bodies, strict
numbers, results from one version of the index, saves that do not stall searches, no lost edits."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

import uae.retrieval.index as index_module
from uae.data.schema import Corpus, Passage
from uae.retrieval.index import DenseIndex
from uae.retrieval.retriever import Retriever
from uae.serving.server import ServerSettings, create_app

SETTINGS = ServerSettings(max_queries=4, max_query_chars=50, max_k=20, max_passages=3, max_passage_chars=200,
                          max_title_chars=40, max_body_bytes=4096, max_wait_ms=2)


@pytest.fixture(scope="module")
def index_dir(tiny_encoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served") / "index"
    corpus = Corpus(Passage(f"{topic}-{n}", f"the {topic} story part {n}", doc_id=f"doc-{topic}")
                    for topic in ("river", "castle", "engine") for n in range(3))
    Retriever.build(str(tiny_encoder_dir), corpus, progress=False).save(folder)
    return folder


@pytest.fixture
def retriever(index_dir, tiny_encoder_dir):
    return Retriever.load(index_dir, model_path=str(tiny_encoder_dir))


@pytest.fixture
def client(retriever):
    with TestClient(create_app(retriever, SETTINGS)) as test_client:
        yield test_client


def test_a_long_title_is_refused_like_a_long_text(client):
    response = client.post("/passages", json={"passages": [{"id": "x", "text": "short", "title": "t" * 41}]})
    assert response.status_code == 422 and "title" in response.json()["detail"]
    assert client.post("/passages", json={"passages": [{"id": "x", "text": "short", "title": "t" * 40}]}).status_code == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_gets_413(client, chunked):
    body = b'{"queries": [{"text": "' + b"a" * 5000 + b'"}]}'
    if chunked:  # no Content-Length: counted as it arrives
        response = client.post("/search", content=iter([body[:2000], body[2000:]]), headers={"content-type": "application/json"})
    else:
        response = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "max_body_bytes" in response.json()["detail"]
    assert client.get("/stats").json()["requests"]["POST /search"] == {"413": 1}


@pytest.mark.parametrize("k", ["3", True, 3.0, 3.5, None, [3]])
def test_k_must_be_an_integer(client, k):
    response = client.post("/search", json={"queries": [{"text": "river"}], "k": k})
    assert response.status_code == 422 and "k" in response.json()["detail"]


@pytest.mark.parametrize("field", [{"text": 3}, {"text": True}, {"text": "x", "scope": 5}])
def test_string_fields_take_no_numbers(client, field):
    assert client.post("/search", json={"queries": [field]}).status_code == 422


def test_a_passage_removed_right_after_the_search_still_comes_back_whole(retriever):
    """A delete that lands between the index search and the response must not turn hits into empty shells."""
    index = retriever.index

    def then_delete(search):
        def wrapped(*args, **kwargs):
            results = search(*args, **kwargs)
            found = {item[0].passage_id if isinstance(item, tuple) else item.passage_id for hits in results for item in hits}
            index.remove(sorted(found & {p.id for p in index.passages}))  # as a concurrent DELETE would, before the response
            return results
        return wrapped

    for name in ("search", "search_passages"):  # whichever the service calls
        if hasattr(index, name):
            setattr(index, name, then_delete(getattr(index, name)))
    with TestClient(create_app(retriever, SETTINGS)) as client:
        response = client.post("/search", json={"queries": [{"text": "river story"}], "k": 3})
    hits = response.json()["results"][0]["hits"]
    assert len(hits) == 3
    assert all(hit["text"] and hit["doc_id"] for hit in hits), hits


def test_a_save_does_not_hold_the_index_lock_while_writing(retriever, tmp_path, monkeypatch):
    """Searches go on while the index files are written (the save only snapshots under the lock)."""
    index = retriever.index
    searched = threading.Event()
    real_write_table = index_module.write_table

    def slow_write(table, path, **kwargs):
        searcher = threading.Thread(target=lambda: (index.search(retriever.index.faiss_index.reconstruct_n(0, 1), 1),
                                                    searched.set()))
        searcher.start()
        searcher.join(timeout=10)  # a search blocked behind the save's lock never finishes
        return real_write_table(table, path, **kwargs)

    monkeypatch.setattr(index_module, "write_table", slow_write)
    index.save(tmp_path / "copy")
    assert searched.is_set()
    assert len(DenseIndex.load(tmp_path / "copy")) == len(index)


def test_acknowledged_edits_are_visible_and_survive_a_restart(retriever, tmp_path, tiny_encoder_dir):
    folder = tmp_path / "live"
    retriever.save(folder)
    settings = ServerSettings(persist_dir=folder, max_passages=10)
    app = create_app(retriever, settings)
    with TestClient(app) as client:
        errors: list[str] = []

        def edit(worker: int) -> None:
            for n in range(3):
                pid = f"w{worker}-{n}"
                added = client.post("/passages", json={"passages": [{"id": pid, "text": f"note {pid}", "doc_id": pid}]})
                if added.status_code != 200 or not added.json()["persisted"]:
                    errors.append(added.text)
                found = client.post("/search", json={"queries": [{"text": f"note {pid}", "scope": pid}], "k": 1}).json()
                if [hit["id"] for hit in found["results"][0]["hits"]] != [pid]:  # visible to the next search
                    errors.append(f"{pid} not found after its add was acknowledged: {found}")
            removed = client.request("DELETE", "/passages", json={"ids": [f"w{worker}-0"]})
            if removed.status_code != 200:
                errors.append(removed.text)

        workers = [threading.Thread(target=edit, args=(w,)) for w in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert not errors, errors
        live = {p.id for p in retriever.index.passages}
    reloaded = Retriever.load(folder, model_path=str(tiny_encoder_dir))
    assert {p.id for p in reloaded.index.passages} == live
    assert {f"w{w}-{n}" for w in range(6) for n in (1, 2)} <= live and not {f"w{w}-0" for w in range(6)} & live


@pytest.mark.parametrize(("path", "body"), [
    ("/search", b'{"queries": [{"text": "bad \\ud800 text"}]}'),
    ("/embed", b'{"texts": ["\\udfff"]}'),
    ("/passages", b'{"passages": [{"id": "s", "text": "fine", "title": "\\ud800"}]}'),
])
def test_lone_surrogates_are_a_422_not_a_crash(client, path, body):
    """(Already so before issue 16: pydantic refuses them; kept so that it stays so.)"""
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422 and "valid string" in response.json()["detail"]
