"""ONNX export: vectors equal to the source model's, int8 cosine, the fingerprint rule, the CLI round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import build_tiny_encoder  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from uae.cli import app  # noqa: E402
from uae.data.schema import Corpus, Passage  # noqa: E402
from uae.errors import ModelIndexMismatch  # noqa: E402
from uae.retrieval.encoders import load_encoder, model_fingerprint  # noqa: E402
from uae.retrieval.onnx_encoder import MANIFEST, OnnxEncoder, export_onnx  # noqa: E402
from uae.retrieval.retriever import Retriever  # noqa: E402

TEXTS = ["where is the castle?", "a river runs north", "x", "the violin maker of the old town sells ten violins a year"]


def _corpus() -> Corpus:
    topics = ["river", "castle", "engine", "garden", "violin", "glacier"]
    return Corpus(Passage(f"{t}-{n}", f"the {t} story part {n} with {t} facts", doc_id=f"doc-{i % 2}")
                  for i, t in enumerate(topics) for n in range(2))


@pytest.fixture(scope="module")
def fp32_dir(tiny_encoder_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "fp32"
    export_onnx(str(tiny_encoder_dir), out)
    return out


@pytest.fixture(scope="module")
def int8_dir(tiny_encoder_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "int8"
    export_onnx(str(tiny_encoder_dir), out, quantize="int8")
    return out


def _session_vectors(folder, texts):
    """Vectors straight from onnxruntime and the saved tokenizer, independent of OnnxEncoder."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    rows = []
    for text in texts:
        features = tokenizer([text], return_tensors="np")
        rows.append(session.run(None, {n: features[n].astype(np.int64) for n in names})[0][0])
    return np.stack(rows)


def test_fp32_export_gives_the_source_vectors(fp32_dir, tiny_encoder_dir):
    source = load_encoder(str(tiny_encoder_dir)).encode(TEXTS, normalize_embeddings=True)
    exported = load_encoder(str(fp32_dir))
    assert isinstance(exported, OnnxEncoder)
    np.testing.assert_allclose(exported.encode(TEXTS, batch_size=3, normalize_embeddings=True), source, atol=1e-5)
    np.testing.assert_allclose(_session_vectors(fp32_dir, TEXTS), source, atol=1e-5)
    manifest = json.loads((fp32_dir / MANIFEST).read_text())
    assert manifest["precision"] == "fp32" and manifest["cosine_to_source"]["min"] > 0.99999
    assert model_fingerprint(str(fp32_dir)) == model_fingerprint(str(tiny_encoder_dir)) == manifest["fingerprint"]
    assert str(tiny_encoder_dir.parent) not in json.dumps(manifest)  # a folder is named, not its absolute path


def test_int8_export_reports_its_cosine_and_applies_the_fingerprint_rule(int8_dir, tiny_encoder_dir):
    manifest = json.loads((int8_dir / MANIFEST).read_text())
    source = load_encoder(str(tiny_encoder_dir))
    from uae.retrieval.onnx_encoder import PROBE_TEXTS

    reference = source.encode(list(PROBE_TEXTS), normalize_embeddings=True)
    mine = _session_vectors(int8_dir, PROBE_TEXTS)
    cosines = np.sum(reference * mine, axis=1) / np.linalg.norm(mine, axis=1)
    assert manifest["precision"] == "int8"
    assert manifest["cosine_to_source"]["mean"] == pytest.approx(cosines.mean(), abs=1e-4)
    assert manifest["cosine_to_source"]["min"] == pytest.approx(cosines.min(), abs=1e-4)
    shares = cosines.mean() >= 0.99
    assert manifest["shares_source_fingerprint"] == shares
    assert (model_fingerprint(str(int8_dir)) == model_fingerprint(str(tiny_encoder_dir))) == shares


def test_an_int8_export_below_the_threshold_gets_its_own_fingerprint(tiny_encoder_dir, tmp_path):
    manifest = export_onnx(str(tiny_encoder_dir), tmp_path / "strict", quantize="int8", min_cosine=1.01)
    assert not manifest["shares_source_fingerprint"]
    assert model_fingerprint(str(tmp_path / "strict")) != model_fingerprint(str(tiny_encoder_dir))


def test_onnx_model_searches_the_source_index_and_mismatches_are_refused(fp32_dir, tiny_encoder_dir, tmp_path):
    index_dir = tmp_path / "index"
    Retriever.build(str(tiny_encoder_dir), _corpus(), progress=False).save(index_dir)
    torch_hits = Retriever.load(index_dir).search(TEXTS, k=5)
    onnx_hits = Retriever.load(index_dir, model_path=str(fp32_dir)).search(TEXTS, k=5)
    assert [[h.passage_id for h in q] for q in onnx_hits] == [[h.passage_id for h in q] for q in torch_hits]

    other = build_tiny_encoder(tmp_path / "other", seed=1)
    export_onnx(str(other), tmp_path / "other-onnx")
    with pytest.raises(ModelIndexMismatch):
        Retriever.load(index_dir, model_path=str(tmp_path / "other-onnx"))

    tampered = tmp_path / "tampered"
    export_onnx(str(tiny_encoder_dir), tampered)
    (tampered / "model.onnx").write_bytes((tmp_path / "other-onnx" / "model.onnx").read_bytes())
    with pytest.raises(ModelIndexMismatch):
        Retriever.load(index_dir, model_path=str(tampered))


def test_cli_export_index_and_search_with_the_onnx_folder(tiny_encoder_dir, tmp_path):
    from uae.data.beir import write_dataset
    from uae.data.schema import Dataset, Query

    data = tmp_path / "data"
    write_dataset(Dataset("tiny", _corpus(), {"q1": Query("q1", "castle facts", answers=("castle",))},
                          {"test": {"q1": {"castle-0": 1}}}), data)
    runner = CliRunner()
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(tiny_encoder_dir), "--onnx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cosine to the source" in result.output
    again = runner.invoke(app, ["export", str(tiny_encoder_dir), "--onnx", "--out", str(out)])
    assert again.exit_code == 2 and "nothing is overwritten" in again.output
    assert runner.invoke(app, ["export", str(tiny_encoder_dir), "--out", str(tmp_path / "x")]).exit_code == 2

    index_dir = tmp_path / "index"
    assert runner.invoke(app, ["index", str(out), str(data), "--out", str(index_dir)]).exit_code == 0
    found = runner.invoke(app, ["search", str(index_dir), "castle facts", "-k", "2", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)[0]["hits"]
    assert len(hits) == 2 and set(hits[0]) == {"passage_id", "score", "text", "title", "doc_id"}
    assert hits[0]["doc_id"] in ("doc-0", "doc-1")
    with_torch = runner.invoke(app, ["search", str(index_dir), "castle facts", "-k", "2", "--json", "--model", str(tiny_encoder_dir)])
    assert with_torch.exit_code == 0 and json.loads(with_torch.stdout)[0]["hits"][0]["passage_id"] == json.loads(found.stdout)[0]["hits"][0]["passage_id"]
