"""The OpenAI embeddings API (official client, live loopback server), bearer auth, read-only, the bind check, /stats."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from live_server import serve_in_thread
from typer.testing import CliRunner

from uae.cli import app as cli_app
from uae.data.schema import Corpus, Passage
from uae.retrieval.retriever import Retriever
from uae.serving.access import check_bind, is_loopback
from uae.serving.server import ServerSettings, create_app

KEY = "sk-test-1234"


@pytest.fixture(scope="module")
def index_dir(tiny_encoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("openai_served") / "index"
    corpus = Corpus(Passage(f"p{i}", f"passage {i} about {topic}", doc_id="d") for i, topic in enumerate(["rivers", "castles", "engines"]))
    Retriever.build(str(tiny_encoder_dir), corpus, progress=False).save(folder)
    return folder


@pytest.fixture
def retriever(index_dir, tiny_encoder_dir):
    return Retriever.load(index_dir, model_path=str(tiny_encoder_dir))


def _reference(retriever, texts):
    """The served model's vectors, straight from sentence-transformers."""
    return retriever.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def test_official_openai_client_embeds_with_float_and_base64(retriever):
    openai = pytest.importorskip("openai")
    server, thread, url = serve_in_thread(create_app(retriever, ServerSettings(api_key=KEY)))
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        name = client.models.list().data[0].id
        assert name == retriever.model_name == "encoder"
        texts = ["rivers of the north", "a castle"]
        default = client.embeddings.create(model=name, input=texts)  # the client asks for base64 by default
        floats = client.embeddings.create(model=name, input=texts, encoding_format="float")
        single = client.embeddings.create(model=name, input="a castle")
        expected = _reference(retriever, texts)
        for response in (default, floats):
            np.testing.assert_allclose(np.asarray([d.embedding for d in response.data]), expected, atol=1e-5)
            assert [d.index for d in response.data] == [0, 1] and response.model == name
        tokens = sum(len(ids) for ids in retriever.model.tokenizer(texts)["input_ids"])
        assert default.usage.prompt_tokens == default.usage.total_tokens == tokens
        np.testing.assert_allclose(single.data[0].embedding, expected[1], atol=1e-5)
        with pytest.raises(openai.NotFoundError, match="not served"):
            client.embeddings.create(model="text-embedding-3-small", input="x")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).embeddings.create(model=name, input="x")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_base64_is_little_endian_float32(retriever):
    with TestClient(create_app(retriever)) as client:
        body = client.post("/v1/embeddings", json={"model": "uae", "input": ["rivers"], "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, _reference(retriever, ["rivers"])[0], atol=1e-6)


@pytest.mark.parametrize("payload, message", [
    ({"model": "uae", "input": ""}, "must not be empty"),
    ({"model": "uae", "input": [1, 2, 3]}, "input"),
    ({"model": "uae", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"model": "uae", "input": "x", "dimensions": 8}, "dimensions"),
    ({"input": "x"}, "model: Field required"),
])
def test_bad_embedding_requests_say_what_is_wrong(retriever, payload, message):
    with TestClient(create_app(retriever)) as client:
        response = client.post("/v1/embeddings", json=payload)
    assert response.status_code == 422 and message in response.json()["detail"]


def test_api_key_guards_every_endpoint_but_healthz(retriever):
    with TestClient(create_app(retriever, ServerSettings(api_key=KEY))) as client:
        assert client.get("/healthz").status_code == 200
        for method, path, body in [("POST", "/search", {"queries": [{"text": "x"}]}), ("POST", "/embed", {"texts": ["x"]}),
                                   ("GET", "/stats", None), ("POST", "/passages", {"passages": [{"id": "n", "text": "t"}]}),
                                   ("GET", "/openapi.json", None), ("POST", "/v1/embeddings", {"model": "uae", "input": "x"})]:
            refused = client.request(method, path, json=body)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
            assert client.request(method, path, json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.post("/search", json={"queries": [{"text": "x"}]}, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_read_only_refuses_edits_and_stats_name_the_model_not_its_path(retriever, tiny_encoder_dir):
    with TestClient(create_app(retriever, ServerSettings(read_only=True))) as client:
        assert client.post("/passages", json={"passages": [{"id": "n", "text": "t"}]}).status_code == 403
        assert client.request("DELETE", "/passages", json={"ids": ["p0"]}).status_code == 403
        stats = client.get("/stats").json()
    assert stats["model"] == {"name": "encoder", "fingerprint": retriever.index.meta.fingerprint}
    assert str(tiny_encoder_dir) not in json.dumps(stats)


def test_bind_check_refuses_an_open_editable_server():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("127.0.0.1", None, False)
    check_bind("0.0.0.0", "k", False)
    check_bind("0.0.0.0", None, True)
    with pytest.raises(ValueError, match="--api-key"):
        check_bind("0.0.0.0", None, False)


def test_serve_refuses_a_public_bind_without_a_key_and_reads_the_key_from_the_environment(index_dir, tiny_encoder_dir, monkeypatch):
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app, **options))
    monkeypatch.delenv("UAE_API_KEY", raising=False)
    refused = CliRunner().invoke(cli_app, ["serve", str(tiny_encoder_dir), "--index", str(index_dir), "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and "UAE_API_KEY" in refused.output and not started
    monkeypatch.setenv("UAE_API_KEY", KEY)
    result = CliRunner().invoke(cli_app, ["serve", str(tiny_encoder_dir), "--index", str(index_dir), "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert started["app"].state.settings.api_key.get_secret_value() == KEY and KEY not in result.output
