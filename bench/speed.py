"""Query latency: UAE (one MiniLM encoding + one FAISS search) against LLM re-rankers over the top-K.

UAE side: the packaged all-MiniLM-L6-v2 encodes the real query text at batch 1 (float32 or
bfloat16, 1 or 2 torch threads: all timed, the fastest used), then FAISS searches an index of
random unit vectors (384-d; search time does not depend on the vectors' values, only the recall
of approximate indexes does, and random vectors are the hardest case for them). Index kinds:
exact inner product (``IndexFlatIP``), scans of fp16- and int8-quantised vectors
(``IndexScalarQuantizer``), 4-bit PQ fast-scan whose top-32K are re-scored exactly
(``PQ192x4fs,RFlat``), and, with ``--hnsw``, HNSW. Each kind's recall@K against the exact top-K
of the float32 encoder's vector is measured on the same queries; the headline uses the fastest
kind whose recall@K is at least 0.95.

Re-ranker side: UPR, the pointwise judge and RankGPT (``uae.rerankers``) re-rank K passages of
about 200 tokens (real SQuAD paragraphs, cut or joined to 200 tokens) with a Qwen2-0.5B-shaped
LLM at random weights: hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, vocab
151936, tied embeddings (``--quick``: the same widths, 1 layer). Text is tokenised with the
packaged MiniLM tokenizer (no hub download); its ids lie inside the model's vocabulary and the LM
head still projects onto all 151936 entries where it is applied. float32 and bfloat16, and 1 or 2
torch threads, are timed on the same forward first and the fastest combination is used. RankGPT
generates the length of a complete ordering ``[1] > ... > [m]`` plus 2 tokens per window (random
weights never stop early, so every window writes that many).

Query encoders compared on the same queries (``--no-onnx`` skips the ONNX ones): PyTorch float32 and
bfloat16, and the packaged MiniLM exported with ``uae export --onnx`` (float32) and ``--quantize int8``,
run by ONNX Runtime (``--onnx-threads``). Each gets encode-only and encode + exact-search p50/p95 and
recall@K against the float32 encoder's exact top-K; the headline uses the fastest encoder whose
recall@K is at least ``MIN_ENCODER_RECALL`` (0.97).

Latency of a re-ranker is its own wall time per query (first stage excluded, which favours the
re-rankers); the ratio is re-ranker p50 / UAE p50, both measured in this run. Load distorts the two
sides differently, so the load average is recorded before and after, and when either is above the
number of cores the ratio is refused (printed as such, no headline); ``--wait-quiet S`` waits up to S
seconds for a quiet machine before starting.

    python bench/speed.py --quick
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
from common import SHARED_DATA, command_line, machine  # noqa: E402  (bench/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
SQUAD = SHARED_DATA / "squad" / "squad-v1.1-dev-part1.json"
FULL = {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "intermediate_size": 4864, "vocab_size": 151936}
QUICK = {**FULL, "num_hidden_layers": 1}
PASSAGE_TOKENS = 200
MIN_RECALL = 0.95
MIN_COSINE = 0.999
"""A faster torch dtype/threads setting is used only if its query vectors keep this cosine to float32's."""
MIN_ENCODER_RECALL = 0.97
"""The headline encoder is the fastest whose recall@K against the float32 exact top-K reaches this."""
METHODS = ("upr", "judge", "rankgpt")
EXACT = "exact (IndexFlatIP, fp32)"


# ---- machine and text -------------------------------------------------------------------------


def load_text() -> tuple[list[str], list[str], str]:
    """Questions and paragraphs of SQuAD v1.1 dev (part 1) when present, else the synthetic quickstart set."""
    if SQUAD.is_file():
        articles = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
        paragraphs = [p["context"] for a in articles for p in a["paragraphs"]]
        questions = [qa["question"] for a in articles for p in a["paragraphs"] for qa in p["qas"]]
        return questions, paragraphs, f"SQuAD v1.1 dev part 1 ({SQUAD})"
    from uae.data.synthetic import make_quickstart_dataset

    dataset = make_quickstart_dataset()
    return [q.text for q in dataset.queries.values()], dataset.corpus.texts, "the synthetic quickstart set (SQuAD absent)"


def passages_of_tokens(paragraphs: list[str], tokenizer, count: int, tokens: int = PASSAGE_TOKENS) -> list[str]:
    """``count`` passages of ``tokens`` tokens: consecutive paragraphs joined, then cut at a token boundary."""
    out, buffer, i = [], "", 0
    while len(out) < count:
        buffer = (buffer + " " + paragraphs[i % len(paragraphs)]).strip()
        i += 1
        encoded = tokenizer(buffer, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) >= tokens:
            out.append(buffer[: encoded["offset_mapping"][tokens - 1][1]])
            buffer = ""
    return out


def percentiles(seconds: list[float]) -> dict:
    values = np.asarray(seconds, dtype=float)
    return {"n": len(values), "p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "mean": float(values.mean())}


# ---- UAE --------------------------------------------------------------------------------------


class QueryEncoder:
    """MiniLM at batch 1 under ``torch.inference_mode``: tokenise, forward, mean-pool, normalise.

    The same computation as ``SentenceTransformer.encode`` (checked on the first query) without its
    per-call bookkeeping; ``dtype`` runs the transformer in bfloat16 (pooling in float32).
    """

    def __init__(self, model=None, dtype=None) -> None:
        import torch

        from uae.retrieval.encoders import load_encoder

        self.model = model or load_encoder("minilm", device="cpu")
        self.tokenizer = self.model.tokenizer
        backbone = self.model[0].auto_model
        self.backbone = copy.deepcopy(backbone).to(dtype) if dtype not in (None, torch.float32) else backbone
        self.dtype = str(dtype or torch.float32).removeprefix("torch.")

    def __call__(self, text: str) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = self.tokenizer([text], return_tensors="pt", truncation=True, max_length=self.model.max_seq_length)
            hidden = self.backbone(**batch).last_hidden_state.float()
            mask = batch["attention_mask"][..., None]
            vector = (hidden * mask).sum(1) / mask.sum(1)
            return torch.nn.functional.normalize(vector, dim=-1).numpy()

    def check(self, text: str) -> float:
        """Largest absolute difference from ``SentenceTransformer.encode`` on ``text``."""
        reference = self.model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return float(np.abs(self(text) - reference).max())


class OnnxQueryEncoder:
    """A ``uae export --onnx`` folder run by ONNX Runtime at batch 1 (tokenise, run the graph)."""

    def __init__(self, folder: Path, threads: int) -> None:
        from uae.retrieval.onnx_encoder import OnnxEncoder

        self.encoder = OnnxEncoder(folder, threads=threads)
        self.dtype = f"onnx-{self.encoder.precision}"
        self.cosine = self.encoder.manifest["cosine_to_source"]

    def __call__(self, text: str) -> np.ndarray:
        return self.encoder.encode([text], batch_size=1)


def export_onnx_encoders(folder: Path, threads: int) -> list[OnnxQueryEncoder]:
    """Export the packaged MiniLM to ONNX float32 and int8 under ``folder`` and load both."""
    from uae.retrieval.onnx_encoder import export_onnx

    started = time.perf_counter()
    encoders = []
    for quantize in (None, "int8"):
        out = folder / (quantize or "fp32")
        export_onnx("minilm", out, quantize=quantize)
        encoders.append(OnnxQueryEncoder(out, threads))
    print(f"ONNX float32 and int8 exported in {time.perf_counter() - started:.0f} s; cosine to the source: "
          + ", ".join(f"{e.dtype} mean {e.cosine['mean']:.4f} min {e.cosine['min']:.4f}" for e in encoders))
    return encoders


def compare_encoders(encoders: dict, index, questions: list[str], k: int, truth: list[set]) -> dict:
    """Per encoder, in blocks on the same queries: encode-only and encode + exact search latency, recall@K vs ``truth``."""
    rows = {}
    for name, encode in encoders.items():
        for q in questions[:3]:
            index.search(encode(q), k)
        encode_s, total_s, found = [], [], []
        for q in questions:
            started = time.perf_counter()
            vector = encode(q)
            encoded = time.perf_counter()
            _, ids = index.search(vector, k)
            total_s.append(time.perf_counter() - started)
            encode_s.append(encoded - started)
            found.append(set(ids[0].tolist()))
        recall = float(np.mean([len(f & t) / k for f, t in zip(found, truth)]))
        rows[name] = {"encode": percentiles(encode_s), "search": percentiles(total_s), "recall": recall}
        print(f"  encoder {name}: encode p50 {rows[name]['encode']['p50'] * 1e3:.2f} ms, encode+search p50 "
              f"{rows[name]['search']['p50'] * 1e3:.2f} ms, p95 {rows[name]['search']['p95'] * 1e3:.2f} ms, recall {recall:.3f}")
    return rows


def time_hybrid(encode, index, paragraphs: list[str], questions: list[str], k: int) -> dict:
    """Per query: encode, exact top-100 search, BM25 top-100 over ``len(index)`` real paragraphs, RRF to the top ``k``.

    BM25 (bm25s, as ``uae search --hybrid``) runs over SQuAD paragraphs repeated to the index's size;
    the dense side searches the random vectors, so this row times the hybrid, it does not measure its quality.
    """
    from uae.data.schema import Corpus, Passage
    from uae.retrieval.bm25 import BM25Index
    from uae.retrieval.mining import reciprocal_rank_fusion
    from uae.retrieval.retriever import FUSION_DEPTH, RRF_K
    from uae.retrieval.types import Hit

    size = index.ntotal
    bm25 = BM25Index(Corpus(Passage(f"p{i}", paragraphs[i % len(paragraphs)]) for i in range(size)))
    latencies, lexical_s = [], []
    for n, q in enumerate([*questions[:3], *questions]):
        started = time.perf_counter()
        scores, rows = index.search(encode(q), FUSION_DEPTH)
        dense = [Hit(f"p{r}", float(s)) for s, r in zip(scores[0], rows[0])]
        lexical_started = time.perf_counter()
        lexical = bm25.search([q], FUSION_DEPTH)[0]
        lexical_done = time.perf_counter()
        reciprocal_rank_fusion([dense, lexical], RRF_K)[:k]
        if n >= 3:  # the first three warm up
            latencies.append(time.perf_counter() - started)
            lexical_s.append(lexical_done - lexical_started)
    return {**percentiles(latencies), "bm25_p50": float(np.percentile(lexical_s, 50)), "size": size}


def wait_for_quiet(cores: int, seconds: float) -> float:
    """Wait up to ``seconds`` for the 1-minute load average to drop to ``cores``; returns the load then."""
    deadline = time.monotonic() + seconds
    load = os.getloadavg()[0]
    while load > cores and time.monotonic() < deadline:
        print(f"load average {load:.1f} > {cores} cores: waiting for a quiet machine", flush=True)
        time.sleep(min(30.0, max(deadline - time.monotonic(), 0.1)))
        load = os.getloadavg()[0]
    return load


def build_indexes(size: int, dim: int, hnsw: bool, seed: int = 0) -> dict:
    """Random unit vectors: exact index, quantised exact scans, PQ fast-scan with exact re-ranking, optionally HNSW."""
    import faiss

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    indexes = {EXACT: faiss.IndexFlatIP(dim)}
    for name, kind in (("scan of fp16 vectors (SQfp16)", faiss.ScalarQuantizer.QT_fp16),
                       ("scan of int8 vectors (SQ8)", faiss.ScalarQuantizer.QT_8bit)):
        indexes[name] = faiss.IndexScalarQuantizer(dim, kind, faiss.METRIC_INNER_PRODUCT)
    refined = faiss.index_factory(dim, f"PQ{dim // 2}x4fs,RFlat", faiss.METRIC_INNER_PRODUCT)
    refined.k_factor = 32
    indexes[f"PQ{dim // 2}x4 fast-scan, top-{32}K re-scored exactly (PQ{dim // 2}x4fs,RFlat)"] = refined
    if hnsw:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction, index.hnsw.efSearch = 40, 128
        indexes["HNSW (M=32, efSearch=128)"] = index
    for index in indexes.values():
        if not index.is_trained:
            index.train(vectors[:20_000])
        index.add(vectors)
    return indexes


def time_encoders(encoders: list[QueryEncoder], questions: list[str]) -> dict[tuple[str, int], float]:
    """Median batch-1 encoding time of each encoder at 1 and 2 torch threads, the settings interleaved per query.

    A setting whose median after 3 queries is over 3x the best one's is dropped early (its median so far is kept).
    """
    import torch

    settings = [(encode, threads) for encode in encoders for threads in (1, 2)]
    times: dict[tuple[str, int], list[float]] = {(e.dtype, t): [] for e, t in settings}
    for index, q in enumerate(questions):
        best = min((float(np.median(v)) for v in times.values() if len(v) >= 3), default=float("inf"))
        for encode, threads in settings:
            samples = times[(encode.dtype, threads)]
            if len(samples) >= 3 and np.median(samples) > 3 * best:
                continue
            torch.set_num_threads(threads)
            started = time.perf_counter()
            encode(q)
            if index:  # the first round warms up
                samples.append(time.perf_counter() - started)
    return {key: float(np.median(values)) for key, values in times.items()}


def time_uae(encode: QueryEncoder, indexes: dict, questions: list[str], k: int, truth: list[set]) -> dict:
    """Per query: one encoding, then a batch-1 search of every index; latency = encoding + search.

    ``truth`` holds each query's exact top-``k`` with the float32 encoder; recall is against it.
    """
    encode_s, search_s, found = [], {name: [] for name in indexes}, {name: [] for name in indexes}
    for q in questions[:3]:
        vector = encode(q)
        for index in indexes.values():
            index.search(vector, k)
    for q in questions:
        started = time.perf_counter()
        vector = encode(q)
        encode_s.append(time.perf_counter() - started)
        for name, index in indexes.items():
            started = time.perf_counter()
            _, rows = index.search(vector, k)
            search_s[name].append(time.perf_counter() - started)
            found[name].append(set(rows[0].tolist()))
    rows = {}
    for name in indexes:
        recall = float(np.mean([len(f & t) / k for f, t in zip(found[name], truth)]))
        rows[name] = {**percentiles([a + b for a, b in zip(encode_s, search_s[name])]), "recall": recall,
                      "search_p50": float(np.percentile(search_s[name], 50))}
    rows["_encode"] = percentiles(encode_s)
    return rows


def run_uae(args, setup: dict, questions: list[str], k: int) -> dict:
    """Choose torch threads, build the indexes, compare the encoders, time every index kind with the fastest faithful one."""
    import faiss
    import torch

    faiss.omp_set_num_threads(1)
    fp32 = QueryEncoder()
    torch_encoders = [fp32, QueryEncoder(fp32.model, torch.bfloat16)]
    setup["encoder_check"] = fp32.check(questions[0])
    setup["encoder_times"] = time_encoders(torch_encoders, questions[:11])
    calibration = np.concatenate([fp32(q) for q in questions[:11]])
    faithful = {e.dtype for e in torch_encoders
                if (np.concatenate([e(q) for q in questions[:11]]) * calibration).sum(1).min() >= MIN_COSINE}
    _, threads = min((key for key in setup["encoder_times"] if key[0] in faithful), key=setup["encoder_times"].get)
    torch.set_num_threads(threads)
    encoders = {f"PyTorch {e.dtype}, {threads} thread(s)": e for e in torch_encoders}
    with tempfile.TemporaryDirectory() as folder:
        if not args.no_onnx:
            encoders |= {f"ONNX Runtime {e.dtype.removeprefix('onnx-')}, {args.onnx_threads} thread(s)": e
                         for e in export_onnx_encoders(Path(folder), args.onnx_threads)}
        started = time.perf_counter()
        indexes = build_indexes(args.index_size, fp32.backbone.config.hidden_size, args.hnsw)
        timed = questions[: setup["uae_queries"]]
        reference = np.concatenate([fp32(q) for q in timed])
        truth = [set(rows.tolist()) for rows in indexes[EXACT].search(reference, k)[1]]
        print(f"indexes built in {time.perf_counter() - started:.0f} s")
        setup["encoders"] = compare_encoders(encoders, indexes[EXACT], timed, k, truth)
        eligible = [name for name, row in setup["encoders"].items() if row["recall"] >= MIN_ENCODER_RECALL]
        choice = min(eligible, key=lambda name: setup["encoders"][name]["search"]["p50"])
        encode = encoders[choice]
        setup["encoder_choice"] = choice
        chosen = np.concatenate([encode(q) for q in timed])
        setup["encoder_min_cosine"] = float((reference * chosen).sum(1).min())
        print(f"encoder {choice}; min cosine to float32 {setup['encoder_min_cosine']:.5f}")
        uae = time_uae(encode, indexes, timed, k, truth)
        setup["hybrid"] = time_hybrid(encode, indexes[EXACT], setup["paragraphs"], timed, k)
        print(f"  hybrid (encode + exact top-100 + BM25 top-100 + RRF): p50 {setup['hybrid']['p50'] * 1e3:.2f} ms, "
              f"p95 {setup['hybrid']['p95'] * 1e3:.2f} ms (BM25 alone p50 {setup['hybrid']['bm25_p50'] * 1e3:.2f} ms)")
    for name, row in uae.items():
        print(f"  UAE {name}: p50 {row['p50'] * 1e3:.2f} ms, p95 {row['p95'] * 1e3:.2f} ms"
              + (f", recall {row['recall']:.3f}" if "recall" in row else ""))
    return uae


# ---- LLM re-rankers ---------------------------------------------------------------------------


def build_llm(folder: Path, shape: dict) -> Path:
    """Save a random-weight Qwen2 causal LM of ``shape`` (stored in bf16) with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from uae.retrieval.encoders import packaged_minilm_path

    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path(), local_files_only=True)
    config = Qwen2Config(**shape, max_position_embeddings=32768, tie_word_embeddings=True,
                         bos_token_id=None, eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_llm(args, setup: dict, questions: list[str], paragraphs: list[str], depths: list[int]) -> dict:
    """Build the LLM, choose dtype and threads, then time each re-ranker at each K within the time budget."""
    from uae.teachers.hf import HFTeacher

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        model_dir = build_llm(Path(folder) / "llm", setup["shape"])
        teacher = HFTeacher(str(model_dir), dtype="float32", batch_tokens=8192, device="cpu")
        print(f"LLM built and loaded in {time.perf_counter() - started:.0f} s")
    setup["parameters"] = sum(p.numel() for p in teacher.model.parameters())
    passages = passages_of_tokens(paragraphs, teacher.tokenizer, max(depths) * setup["llm_queries"])
    setup["dtype_times"], setup["dtype"] = choose_dtype_and_threads(teacher, passages)
    print(f"dtype/threads: {setup['dtype_times']} -> {setup['dtype']}")
    rerankers = make_rerankers(teacher)
    deadline = time.perf_counter() + setup["budget_s"]
    llm: dict = {}
    for k in depths:
        for method in args.methods:
            projected = projected_seconds(method, k, llm)
            if projected is not None and time.perf_counter() + projected > deadline:
                llm[(method, k)] = {"n": 0}
                print(f"  {method} K={k}: skipped, it would not finish within the {setup['budget_s']:.0f} s budget")
                continue
            row = time_reranker(rerankers[method], questions, passages, k, setup["llm_queries"], setup["row_budget_s"], deadline)
            llm[(method, k)] = row
            print(f"  {method} K={k}: p50 {row['p50']:.2f} s, p95 {row['p95']:.2f} s over {row['n']} queries; "
                  f"repairs {row['repairs']}", flush=True)
    return llm


def choose_dtype_and_threads(teacher, passages: list[str], rounds: int = 2) -> tuple[dict, tuple]:
    """Time a backbone forward of one passage per (dtype, threads), rounds interleaved; keep the fastest.

    The weights were saved in bf16, so the float32 and bfloat16 copies hold the same values. Each
    setting's time is its minimum over the rounds; after the first round a setting over 2x the best
    is dropped (its first time is kept). Returns ``({(dtype, threads): seconds}, best)``.
    """
    import torch

    models = {"float32": teacher.model, "bfloat16": copy.deepcopy(teacher.model).to(torch.bfloat16)}
    ids = teacher.tokenizer(passages[:1], add_special_tokens=False, return_tensors="pt")["input_ids"]
    times: dict[tuple[str, int], list[float]] = {(d, t): [] for d in models for t in (1, 2)}
    with torch.inference_mode():
        for round_ in range(rounds):
            best = min((min(v) for v in times.values() if v), default=float("inf"))
            for (dtype, threads), samples in times.items():
                if round_ and min(samples) > 2 * best:
                    continue
                torch.set_num_threads(threads)
                if not round_:
                    models[dtype].base_model(input_ids=ids[:, :16])  # warm-up
                started = time.perf_counter()
                models[dtype].base_model(input_ids=ids)
                samples.append(time.perf_counter() - started)
    best_setting = min(times, key=lambda key: min(times[key]))
    teacher.model, teacher.dtype = models[best_setting[0]], getattr(torch, best_setting[0])
    torch.set_num_threads(best_setting[1])
    return {key: min(values) for key, values in times.items()}, best_setting


def make_rerankers(teacher) -> dict:
    """UPR, judge and RankGPT on one loaded model (shallow teacher copies carry each method's templates)."""
    from uae.rerankers.judge import JUDGE_TEMPLATES, JudgeReranker
    from uae.rerankers.rankgpt import RankGPTReranker
    from uae.rerankers.upr import UPR_TEMPLATES, UPRReranker
    from uae.teachers.causal_lm import GreedyGenerator

    upr_teacher, judge_teacher = copy.copy(teacher), copy.copy(teacher)
    upr_teacher.templates, judge_teacher.templates = UPR_TEMPLATES, JUDGE_TEMPLATES
    return {"upr": UPRReranker(upr_teacher), "judge": JudgeReranker(judge_teacher),
            "rankgpt": RankGPTReranker(GreedyGenerator(teacher), window=20, step=10)}


def time_reranker(reranker, questions: list[str], passages: list[str], k: int, n_queries: int, budget_s: float, deadline: float) -> dict:
    """Warm up on 2 passages, then re-rank ``k`` passages per query until ``n_queries``, the row's budget or the deadline."""
    from uae.data.schema import Corpus, Passage, Query
    from uae.retrieval.types import Hit

    corpus = Corpus(Passage(f"p{i}", text) for i, text in enumerate(passages))
    reranker.rerank([Query("warm", questions[-1])], [[Hit("p0", 1.0), Hit("p1", 0.5)]], corpus, 2)
    reranker.repairs.clear()
    latencies, started = [], time.perf_counter()
    for n in range(n_queries):
        hits = [Hit(f"p{(n * k + j) % len(passages)}", 1.0 - j / k) for j in range(k)]
        reranker.rerank([Query(f"q{n}", questions[n])], [hits], corpus, k)
        latencies.extend(reranker.latencies)
        print(f"    {reranker.name} K={k} query {n + 1}: {latencies[-1]:.1f} s", flush=True)
        now = time.perf_counter()
        if now - started + latencies[-1] > budget_s or now + latencies[-1] > deadline:
            break
    return {**percentiles(latencies), "repairs": dict(reranker.repairs)}


def projected_seconds(method: str, k: int, done: dict) -> float | None:
    """First-query time of ``(method, k)`` projected from the same method at a smaller K (None if none ran).

    UPR and the judge grow linearly with K; RankGPT with its number of windows.
    """
    from uae.rerankers.rankgpt import window_spans

    smaller = [(kk, row) for (m, kk), row in done.items() if m == method and kk < k and row.get("n")]
    if not smaller:
        return None
    kk, row = max(smaller, key=lambda item: item[0])
    if method == "rankgpt":
        return row["p50"] * len(window_spans(k, 20, 10)) / len(window_spans(kk, 20, 10))
    return row["p50"] * k / kk


# ---- report -----------------------------------------------------------------------------------


def headline_uae(uae: dict) -> str:
    """Fastest index kind (by p50) whose recall@K against exact is at least ``MIN_RECALL``."""
    eligible = [name for name, row in uae.items() if not name.startswith("_") and row["recall"] >= MIN_RECALL]
    return min(eligible, key=lambda name: uae[name]["p50"])


def is_quiet(info: dict, end_load: float) -> bool:
    """Whether the load average stayed at or below the number of cores at the start and the end of the run."""
    return max(info["load_average"], end_load) <= info["cores"]


def ratio_text(seconds: float, base: float, quiet: bool) -> str:
    return f"**{seconds / base:,.0f}x**" if quiet else "refused: load > cores"


def encoder_table(setup: dict) -> list[str]:
    k = setup["k"]
    rows = [f"| {name}{' **(headline)**' if name == setup['encoder_choice'] else ''} | {row['encode']['p50'] * 1e3:.2f} | "
            f"{row['encode']['p95'] * 1e3:.2f} | {row['search']['p50'] * 1e3:.2f} | {row['search']['p95'] * 1e3:.2f} | "
            f"{row['recall']:.3f} |" for name, row in setup["encoders"].items()]
    return [f"| query encoder (batch 1) | encode p50 ms | encode p95 ms | encode+exact search p50 ms | p95 ms | "
            f"recall@{k} vs fp32 exact top-{k} |", "|---|---:|---:|---:|---:|---:|", *rows, ""]


def report(command: str, info: dict, args, setup: dict, uae: dict, llm: dict, end_load: float) -> str:
    best = headline_uae(uae)
    base = uae[best]["p50"]
    quiet = is_quiet(info, end_load)
    uae_rows = [
        f"| {name}{' **(headline)**' if name == best else ''} | {row['recall']:.3f} | {row['search_p50'] * 1e3:.2f} | "
        f"{row['p50'] * 1e3:.2f} | {row['p95'] * 1e3:.2f} | {1 / row['mean']:.1f} |"
        for name, row in uae.items() if not name.startswith("_")
    ]
    llm_rows = [
        f"| {method} | {k} | {row['n']} | {row['p50']:.1f} | {row['p95']:.1f} | {1 / row['mean']:.4f} | {ratio_text(row['p50'], base, quiet)} | "
        f"{', '.join(f'{kind} {count}' for kind, count in row['repairs'].items()) or '-'} |"
        if row["n"] else f"| {method} | {k} | 0 | - | - | - | not measured: would overrun the {setup['budget_s']:.0f} s budget | - |"
        for (method, k), row in llm.items()
    ]
    dtype_times = ", ".join(f"{d} x {t} thread{'s' if t > 1 else ''}: {s:.2f} s" for (d, t), s in setup["dtype_times"].items())
    lines = [
        f"\n## Query latency: UAE vs LLM re-rankers (bench/speed.py{' --quick' if args.quick else ''}), {dt.date.today().isoformat()}\n",
        f"Command: `{command}`  ",
        f"Machine: {info['cores']} cores ({info['cpu']}), torch {info['torch']}, transformers {info['transformers']}, "
        f"faiss {info['faiss']}, onnxruntime {_version('onnxruntime')}, CPU only. Load average {info['load_average']:.1f} at the "
        f"start, {end_load:.1f} at the end, on {info['cores']} cores: "
        + ("quiet enough for the ratios below (both sides measured in this same run).\n" if quiet else
           "**the machine was busier than its cores, so no ratio is reported** (load distorts the two sides "
           "differently); rerun on a quiet machine, or with --wait-quiet.\n"),
        f"**UAE**: all-MiniLM-L6-v2 encodes the real query text at batch 1 (tokenise, forward under inference_mode, "
        f"mean-pool, normalise: max abs diff {setup['encoder_check']:.1e} to SentenceTransformer.encode). Encoder dtype and "
        f"torch threads chosen by timing (median of 10 interleaved queries; a dtype is eligible when its cosine to "
        f"float32 stays >= {MIN_COSINE}; a setting 3x slower than the best is dropped after 3): " + ", ".join(f"{d} x {t} thread{'s' if t > 1 else ''}: {v * 1e3:.1f} ms"
                                                          for (d, t), v in setup["encoder_times"].items())
        + f". Encoders compared below (ONNX: `uae export --onnx`, float32 and dynamic int8); used **{setup['encoder_choice']}**, "
        f"the fastest with recall@{setup['k']} >= {MIN_ENCODER_RECALL} (min cosine to the float32 "
        f"embedding over the timed queries: {setup['encoder_min_cosine']:.5f}); FAISS threads 1. Then one FAISS search "
        f"for the top-{setup['k']} in an index of {args.index_size:,} **random unit vectors** (384-d; search time does not "
        "depend on the values, but random vectors are the hardest case for approximate indexes). "
        f"{setup['uae_queries']} timed queries from {setup['text']}. Recall@{setup['k']} is against the exact top-"
        f"{setup['k']} of the float32 encoder's vector (so it also covers the encoder's dtype); the headline is the "
        f"fastest kind with recall >= {MIN_RECALL}. Encoding alone: p50 {uae['_encode']['p50'] * 1e3:.2f} ms.\n",
        *encoder_table(setup),
        f"Hybrid search (`uae search --hybrid`) with this encoder: encode, exact top-100, BM25 top-100 over "
        f"{setup['hybrid']['size']:,} SQuAD paragraphs (bm25s), reciprocal rank fusion: p50 "
        f"{setup['hybrid']['p50'] * 1e3:.2f} ms, p95 {setup['hybrid']['p95'] * 1e3:.2f} ms (BM25 alone p50 "
        f"{setup['hybrid']['bm25_p50'] * 1e3:.2f} ms). Timing only: the dense side searches random vectors.\n",
        f"| index ({args.index_size:,} vectors) | recall@{setup['k']} vs exact fp32 | search p50 ms | encode+search p50 ms | p95 ms | queries/s |",
        "|---|---:|---:|---:|---:|---:|",
        *uae_rows,
        "",
        f"**LLM re-rankers** over the top-K, passages of {PASSAGE_TOKENS} tokens ({setup['text']}): Qwen2 architecture, "
        f"{setup['shape']['num_hidden_layers']} layers, hidden {setup['shape']['hidden_size']}, "
        f"{setup['shape']['num_attention_heads']} heads / {setup['shape']['num_key_value_heads']} KV heads, intermediate "
        f"{setup['shape']['intermediate_size']}, vocab {setup['shape']['vocab_size']} ({setup['parameters'] / 1e6:.0f}M "
        "parameters), **random weights; timing does not depend on weight values**"
        + (" (**--quick: 1 layer instead of 24**, so these re-ranker times are far below the 0.5B model's)" if args.quick else "")
        + f". Text tokenised with the packaged MiniLM tokenizer. dtype and threads chosen by timing a forward of one "
        f"passage (minimum of 2 interleaved rounds; a setting over 2x the best skips round 2): {dtype_times}; used **{setup['dtype'][0]}, {setup['dtype'][1]} thread(s)**. UPR: one batched forward, "
        "LM head on the question tokens only; judge: one batched forward, LM head at the last position only; RankGPT: "
        f"window 20, step 10, greedy generation of the full ordering's length + 2 tokens per window. Latency is the "
        f"re-ranker's own time per query (first stage excluded), after one untimed warm-up call. Timed queries per row: up "
        f"to {setup['llm_queries']}, fewer when the row's {setup['row_budget_s']:.0f} s or the run's {setup['budget_s']:.0f} s "
        "budget ran out (with n <= 3, p95 is close to the maximum)."
        + (" The random-weight model writes no usable RankGPT ordering, so the parser appends the missing ids (see "
           "repairs); generation still runs to its bound, as long as a compliant model's full ordering."
           if any("missing_id" in row.get("repairs", {}) for row in llm.values()) else "") + "\n",
        "| re-ranker | K | timed queries | p50 s | p95 s | queries/s | p50 / UAE p50 | repairs (parser, truncation) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *llm_rows,
    ]
    return "\n".join(lines) + "\n"


def result_line(args, uae: dict, llm: dict, quiet: bool = True) -> str:
    best = headline_uae(uae)
    base = uae[best]["p50"]
    parts = [f"UAE p50 {base * 1e3:.1f} ms ({best}, {args.index_size:,} vectors)"]
    for (method, k), row in llm.items():
        ratio = f" ({row['p50'] / base:,.0f}x)" if quiet else ""
        parts.append(f"{method}@{k} p50 {row['p50']:.1f} s{ratio}" if row["n"] else f"{method}@{k} not measured")
    k20 = [row["p50"] for (method, k), row in llm.items() if k == 20 and row["n"]]
    cheapest = f"; cheapest re-ranker at K=20 / UAE = {min(k20) / base:,.0f}x" if k20 and quiet else ""
    if not quiet:
        cheapest = "; no ratio: load average above the number of cores"
    return f"RESULT: speed{' (quick, 1-layer LLM)' if args.quick else ''}: " + ", ".join(parts) + cheapest


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


# ---- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="Per-query latency of UAE against LLM re-rankers.")
    parser.add_argument("--quick", action="store_true", help="1-layer LLM, K=20 only, fewer queries (< 2 minutes)")
    parser.add_argument("--index-size", type=int, default=100_000, help="vectors in the FAISS index")
    parser.add_argument("--uae-queries", type=int, help="timed UAE queries (default 200, quick 30)")
    parser.add_argument("--llm-queries", type=int, help="timed queries per re-ranker row at most (default 3, quick 1)")
    parser.add_argument("--row-budget-s", type=float, help="no new query in a row after this many seconds (default 150, quick 30)")
    parser.add_argument("--budget-s", type=float, help="time for all re-ranker rows; a row that would overrun it is "
                        "skipped and reported as such (default 840, quick 60)")
    parser.add_argument("--depths", type=int, nargs="+", help="K values (default 20 50, quick 20)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--hnsw", action="store_true", help="also build and time an HNSW index (slow to build here)")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime encoders")
    parser.add_argument("--onnx-threads", type=int, default=os.cpu_count() or 1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--wait-quiet", type=float, default=0.0, help="wait up to this many seconds for load <= cores first")
    args = parser.parse_args()
    depths = args.depths or ([20] if args.quick else [20, 50])
    setup = {"k": depths[0], "uae_queries": args.uae_queries or (30 if args.quick else 200),
             "llm_queries": args.llm_queries or (1 if args.quick else 3),
             "row_budget_s": args.row_budget_s or (30.0 if args.quick else 150.0),
             "budget_s": args.budget_s or (60.0 if args.quick else 840.0), "shape": QUICK if args.quick else FULL}

    command = command_line(__file__)
    wait_for_quiet(os.cpu_count() or 1, args.wait_quiet)
    info = machine()
    print(f"command: {command}")
    print(f"machine: {info['cores']} cores ({info['cpu']}), torch {info['torch']}, transformers {info['transformers']}, "
          f"faiss {info['faiss']}, load average {info['load_average']:.1f} (shared machine)")
    questions, paragraphs, setup["text"] = load_text()
    setup["paragraphs"] = paragraphs

    started = time.perf_counter()
    uae = run_uae(args, setup, questions, depths[0])
    print(f"[{time.perf_counter() - started:.0f} s] UAE done", flush=True)
    llm = run_llm(args, setup, questions, paragraphs, depths)
    print(f"[{time.perf_counter() - started:.0f} s] re-rankers done", flush=True)
    end_load = os.getloadavg()[0]
    text = report(command, info, args, setup, uae, llm, end_load)
    print(text)
    if not args.no_write:
        with open(ROOT / "BENCHMARKS.md", "a", encoding="utf-8") as handle:
            if handle.tell() == 0:
                handle.write("# Benchmarks\n\nWritten by the scripts under bench/; each section is one run.\n")
            handle.write(text)
    print(result_line(args, uae, llm, is_quiet(info, end_load)))


if __name__ == "__main__":
    main()
