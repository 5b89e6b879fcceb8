"""A sentence-transformers model exported to ONNX, and the ONNX Runtime encoder that reads it.

``uae export MODEL --onnx [--quantize int8] --out DIR`` writes a folder::

    model.onnx        the whole sentence-transformers forward (transformer, pooling, normalisation,
                      and any dense layer the model has), traced from the model itself, so the
                      pooling is what the model's modules.json says and not a guess
    tokenizer files   the model's own tokenizer (``save_pretrained``)
    uae_onnx.json     the manifest: source model, fingerprint, precision, cosine against the source
    README.md         the source model's card, kept for its licence

Fingerprint rule (what lets an ONNX model search an index built by its source model): the export
of model M carries M's fingerprint when its vectors stay close to M's, measured at export time as
the mean cosine over probe texts (``min_cosine``, default 0.99). float32 exports always pass
(cosine 1.0 to six digits). Dynamically quantised int8 exports usually pass too (MiniLM: mean about
0.99); one that does not gets a fingerprint of its own, so an index built by M refuses it and an
index built by the int8 model itself is required. The manifest also records the digest of
``model.onnx``: an edited or replaced ONNX file no longer carries M's fingerprint.

sentence-transformers' own ``backend="onnx"`` goes through ``optimum``, which does not work with
transformers 5, hence ``torch.onnx.export`` here.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MANIFEST = "uae_onnx.json"
ONNX_FILE = "model.onnx"
FORMAT = "uae-onnx/1"
PRECISIONS = ("fp32", "int8")
THREADS_ENV = "UAE_ONNX_THREADS"

PROBE_TEXTS = (
    "who founded the company and in which year?",
    "what is the boiling point of water at sea level",
    "The treaty was signed in 1648 and ended thirty years of war in central Europe.",
    "how do transformers use attention over tokens",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "symptoms of vitamin D deficiency in adults",
    "The river flows north through the valley before it reaches the harbour town.",
    "what does the acronym BM25 stand for in information retrieval?",
    "A dense retriever encodes queries and passages into the same vector space.",
    "best time of year to visit the northern lights",
    "Quarterly revenue rose 12 percent, driven by subscriptions in Asia.",
    "why is the sky blue",
    "The patient was given 5 mg of the drug twice daily for two weeks.",
    "list of prime numbers below one hundred",
    "In 1969 the first crewed landing on the Moon took place.",
    "how to reset a forgotten router password",
)
"""Texts the export encodes with the source and the ONNX model to measure their cosine."""


def is_onnx_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by :func:`export_onnx`."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of an ONNX export folder; :class:`~uae.errors.DataError` when it is malformed."""
    from uae.errors import DataError

    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(path, None, f"expected the JSON manifest of `uae export --onnx` ({err})") from None
    missing = [key for key in ("format", "fingerprint", "onnx_digest", "precision", "max_seq_length") if key not in manifest]
    if missing or manifest.get("format") != FORMAT:
        raise DataError(path, None, f"expected format {FORMAT!r} with fields {missing or 'format'}; re-export with `uae export --onnx`")
    return manifest


class OnnxEncoder:
    """ONNX Runtime inference with the interface of ``SentenceTransformer.encode`` that uae uses.

    Args:
        folder: a folder written by :func:`export_onnx`.
        max_seq_length: truncation length (default: the source model's).
        threads: ONNX Runtime intra-op threads (default ``$UAE_ONNX_THREADS``, else one per core).
    """

    def __init__(self, folder: str | os.PathLike, max_seq_length: int | None = None, threads: int | None = None):
        from uae.errors import import_optional

        ort = import_optional("onnxruntime", "ONNX models need onnxruntime: pip install 'uae[onnx]'")
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.max_seq_length = max_seq_length or int(self.manifest["max_seq_length"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        options = ort.SessionOptions()
        threads = threads or int(os.environ.get(THREADS_ENV, "0") or 0)
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def encode(self, sentences: Sequence[str] | str, batch_size: int = 32, normalize_embeddings: bool = False,
               convert_to_numpy: bool = True, show_progress_bar: bool = False, **_: object) -> np.ndarray:
        """Embeddings of ``sentences`` (float32), batched by length like sentence-transformers.

        The exported graph already applies the model's own normalisation when it has one;
        ``normalize_embeddings`` normalises again (a no-op on unit vectors).
        """
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if not texts:
            return np.zeros((0, self.get_sentence_embedding_dimension()), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.get_sentence_embedding_dimension()), dtype=np.float32)
        for start in range(0, len(texts), max(batch_size, 1)):
            rows = order[start : start + batch_size]
            out[rows] = self._run([texts[i] for i in rows])
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if single else out

    def _run(self, texts: list[str]) -> np.ndarray:
        features = self.tokenizer(texts, padding=True, truncation="longest_first", max_length=self.max_seq_length,
                                  return_tensors="np")
        feed = {name: np.asarray(features[name], dtype=np.int64) for name in self.input_names}
        return self.session.run(None, feed)[0].astype(np.float32, copy=False)


def export_onnx(model: str, out: str | os.PathLike, quantize: str | None = None, min_cosine: float = 0.99,
                probe_texts: Sequence[str] = PROBE_TEXTS, opset: int = 17) -> dict:
    """Export a sentence-transformers model to ONNX (optionally int8), with its tokenizer and manifest.

    Args:
        model: model folder, hub name or ``minilm``.
        out: the export folder (created; refused when it is not empty: nothing is overwritten).
        quantize: ``None`` (float32) or ``"int8"`` (ONNX Runtime dynamic quantisation, per channel).
        min_cosine: the mean cosine to the source's vectors at which the export keeps the source's
            fingerprint (see the module notes).
        probe_texts: the texts that cosine is measured on.
        opset: the ONNX opset.

    Returns:
        The manifest written to ``out/uae_onnx.json``.
    """
    from uae.errors import DataError, import_optional
    from uae.retrieval.encoders import display_name, load_encoder, model_fingerprint, resolve_encoder

    import_optional("onnx", "`uae export --onnx` needs onnx and onnxruntime: pip install 'uae[onnx]'")
    import_optional("onnxruntime", "`uae export --onnx` needs onnx and onnxruntime: pip install 'uae[onnx]'")
    if quantize not in (None, "int8"):
        raise ValueError(f"--quantize must be int8 (or omitted for float32), got {quantize!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(out, None, "expected a new or empty folder for the export (nothing is overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    source = load_encoder(model, device="cpu")
    names = _trace_to_onnx(source, out / "model-fp32.onnx.tmp", opset)
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(out / "model-fp32.onnx.tmp"), str(out / ONNX_FILE), weight_type=QuantType.QInt8, per_channel=True)
        (out / "model-fp32.onnx.tmp").unlink()
    else:
        os.replace(out / "model-fp32.onnx.tmp", out / ONNX_FILE)
    source.tokenizer.save_pretrained(str(out))
    card = Path(resolve_encoder(model)) / "README.md"
    if card.is_file():
        shutil.copyfile(card, out / "README.md")
    manifest = {"format": FORMAT, "source_model": display_name(model), "source_fingerprint": model_fingerprint(model),
                "precision": quantize or "fp32", "max_seq_length": int(source.max_seq_length), "input_names": names,
                "opset": opset, "onnx_digest": onnx_digest(out), "fingerprint": "", "min_cosine": min_cosine}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    cosines = _cosines(source, OnnxEncoder(out), list(probe_texts))
    shares = float(cosines.mean()) >= min_cosine
    manifest |= {"cosine_to_source": {"mean": round(float(cosines.mean()), 6), "min": round(float(cosines.min()), 6),
                                      "texts": len(cosines)},
                 "fingerprint": manifest["source_fingerprint"] if shares else manifest["onnx_digest"],
                 "shares_source_fingerprint": shares}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def onnx_digest(folder: str | os.PathLike) -> str:
    """The short digest of ``model.onnx`` in ``folder`` (the same hash as model fingerprints)."""
    from uae.retrieval.encoders import weights_digest

    return weights_digest(folder, [ONNX_FILE])


def _trace_to_onnx(model, path: Path, opset: int) -> list[str]:
    """Trace ``model``'s full forward (tokens -> sentence embedding) into ``path``; returns the input names."""
    import warnings

    import torch

    features = model.preprocess(["a short probe", "a somewhat longer probe sentence for tracing the graph"])
    names = [name for name in model.tokenizer.model_input_names if name in features]

    class Forward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, tensors)))["sentence_embedding"]

    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"sentence_embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for every input (checked by the cosine)
        torch.onnx.export(Forward().eval(), tuple(features[n] for n in names), str(path), input_names=names,
                          output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=opset, dynamo=False)
    return names


def _cosines(source, exported: OnnxEncoder, texts: list[str]) -> np.ndarray:
    """Cosine between the source's and the export's vector of each text, encoded one by one (as queries are)."""
    reference = source.encode(texts, batch_size=1, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    mine = exported.encode(texts, batch_size=1, normalize_embeddings=True)
    return np.sum(reference * mine, axis=1)
