"""Labeling cost: pairs against unique passages per dataset, then the uncached hf path against passage-prefix reuse.

    python bench/labeling.py --questions 100          # the view on five datasets, then the timing
    python bench/labeling.py --quick --no-write       # the same code path in a few minutes

**1. The pair-versus-unique view** (``--datasets``; all five by default: SQuAD v1.1 scoped, QMSum
scoped to the meeting, the QASPER sample, NQ/QED, PubMedQA from ``../shared/data``). Pools of 16
are those ``bench/quality.py`` mined for its runs, ``RUNS/q-<name>/pools.parquet`` (``--runs``,
default ``runs/``; 1,000 training questions, or all a dataset has), read beside the dataset loaded
with the same options; a dataset without such a file (the QASPER sample has no quality run) is
mined here with the same settings (BM25 and the base encoder fused, depth 100, gold included),
over all its usable questions. Each prints: rows (every (question, passage or none, answer) the
teacher scores), unique pooled passages, pools per passage, prompt tokens of all rows, and

- the **bound**: tokens when every prefix shared by the rows of one passage (or one question)
  anywhere in the job is fed once (:func:`uae.teachers.prefix.prefix_groups`, minimum 1 token);
- **planned**: tokens the hf teacher feeds with the labeling planner's parts (64 queries at most)
  and chunks (256 requests) and its default 16-token minimum: :func:`uae.labeling.label_pools` runs
  with a teacher that only counts;

as reuse factors (tokens of all rows / tokens after sharing). Aim: planned >= 75% of the bound.
Beside it, the share other plans of the same job reach (:func:`reference_plans`): random parts,
KaHyPar's partition when ``kahypar`` is installed (``pip install kahypar``; not a dependency of
uae), and the planner with parts of 256 queries.

**2. The timing**: ``--questions`` SQuAD-scoped questions of the view's pools (default 1,000, the
job a user runs; the first in the planner's walk order, so whole documents: a passage sits in
about as many pools as in the full job, which is printed beside it), the Qwen2.5-0.5B shape
(hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, vocab 151936, tied embeddings)
at random weights (speed does not depend on weight values), float32 on the CPU. Every path labels
the same requests with :func:`uae.labeling.label_pools` (library defaults: 64 queries per part, 256
requests per call, ``--batch-tokens`` 4096) in a fresh process, so its peak memory is its own:
``uncached`` (``hf:...,prefix_reuse=false``) and ``reuse`` (the default); ``full-logits`` and
``openai`` (the in-package testing server) on request (``--paths``). Reported: wall and CPU seconds,
rows/s, tokens/s (prompt + answer tokens of all rows per second, the same numerator for every
path; and the tokens actually fed), peak RSS (``ru_maxrss``, model loading included), the RSS
increase while scoring, and the largest NLL difference against the first path. Aim: reuse >= 4x
the rows/s of uncached, NLLs within 1e-4, and the measured ratio beside the token bound.

Text is tokenised with the packaged MiniLM (WordPiece) tokenizer unless ``--tokenizer`` names
another (a real Qwen2 tokenizer folder, if you have one): its ids (< 30522) lie inside the model's
vocabulary, and the LM head still projects onto every entry of it. A full-size timing takes hours
on 2 CPU cores (the uncached path most of it): ``--questions`` sizes it. ``--quick`` uses a small
model body, 6 questions and 80 questions per dataset in the view.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # not the tokenizer's 512-token notice for every long prompt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED_DATA, append_benchmarks, command_line, describe_machine, machine, result_line, section_heading  # noqa: E402

FULL = {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "intermediate_size": 4864, "vocab_size": 151936}
QUICK = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 1024, "vocab_size": 32000}
PATHS = ("uncached", "reuse", "full-logits", "openai")
CONTEXT = 4096
"""The model's context in the timing and the view (a longer passage is cut, and counted)."""
AIM_SPEEDUP, AIM_NLL, AIM_SHARE = 4.0, 1e-4, 0.75


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset of the view comes from: its loader, files, options and quality run."""

    title: str
    loader: str
    files: str
    options: dict
    run: str | None


DATASETS = {
    "squad": DatasetSpec("SQuAD v1.1, scoped", "squad-v1.1", "squad", {"scoped": True}, "q-squad"),
    "qmsum": DatasetSpec("QMSum, scoped to the meeting", "qmsum", "qmsum", {}, "q-qmsum"),
    "qasper": DatasetSpec("QASPER sample, scoped to the paper", "qasper", "qasper/qasper-hf-train-first10papers.jsonl", {}, None),
    "nq": DatasetSpec("NQ/QED", "nq-qed", "nq_qed/qed-dev.jsonl", {}, "q-nq"),
    "pubmedqa": DatasetSpec("PubMedQA", "pubmedqa", "pubmedqa", {}, "q-pubmedqa"),
}


def tokenizer_path(override: str | None = None) -> str:
    """The tokenizer every path and the view use: ``override``, else the packaged MiniLM (WordPiece)."""
    if override:
        return override
    from uae.retrieval.encoders import packaged_minilm_path

    return str(packaged_minilm_path())


# ---- 1. the pair-versus-unique view ----------------------------------------------------------


def dataset_pools(spec: DatasetSpec, runs: Path, limit: int | None):
    """``(corpus, queries, pools, source)``: the run's pools if there are some, else mined here (see the module docstring)."""
    from uae.data.loaders import load
    from uae.data.tables import read_pools

    dataset = load(spec.loader, SHARED_DATA / spec.files, **spec.options).dataset
    pools_file = runs / spec.run / "pools.parquet" if spec.run else None
    if pools_file is not None and pools_file.is_file():
        pools = read_pools(pools_file)
        source = f"{pools_file} (mined by bench/quality.py)"
    else:
        pools = mine_all(dataset)
        source = f"mined here over all {len(pools)} usable questions (BM25 + base encoder, depth 100, gold included)"
    queries = [dataset.queries[qid] for qid in pools]
    if limit is not None:
        queries = queries[:limit]
    return dataset.corpus, queries, {q.id: pools[q.id] for q in queries}, source


def mine_all(dataset):
    """Pools of 16 for every usable question of every split, as ``uae mine`` builds them."""
    from uae.retrieval.mining import mine_pools
    from uae.retrieval.retriever import Retriever

    queries = {q.id: q for split in dataset.qrels for q in dataset.usable_queries(split)[0]}
    retriever = Retriever.build("minilm", dataset.corpus)
    return mine_pools(dataset, list(queries.values()), retriever, size=16, depth=100, include_gold=True, progress=False)


class TokenCounter:
    """A teacher that scores nothing: it counts the tokens the hf teacher would feed, uncached and with reuse."""

    name = "token counter"

    def __init__(self, tokenizer_name: str, min_prefix_tokens: int) -> None:
        from transformers import AutoTokenizer

        from uae.teachers.base import PromptTemplates
        from uae.teachers.causal_lm import PromptEncoder

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_name, local_files_only=Path(tokenizer_name).is_dir())
        self.encoder = PromptEncoder(tokenizer, PromptTemplates(), CONTEXT)
        self.min_prefix_tokens = min_prefix_tokens
        self.requests: list = []
        self.encoded: list = []
        self.planned = 0
        self._seen: dict = {}
        """Encodings by request, so that scoring the same job under another plan does not tokenise it again."""

    def reset(self) -> None:
        """Forget the counts (not the encodings) before counting the same job under another plan."""
        self.requests, self.encoded, self.planned = [], [], 0

    def fit(self, passages) -> None:
        pass

    def stats(self) -> dict:
        return {}

    def describe(self) -> dict:
        return {"teacher": self.name}

    def score(self, requests):
        from uae.teachers.base import NLLResult
        from uae.teachers.prefix import fed_tokens, prefix_groups

        encoded = []
        for i, r in enumerate(requests):
            if r not in self._seen:
                self._seen[r] = self.encoder.encode(i, r)
            encoded.append(self._seen[r])
        groups, _ = prefix_groups(requests, encoded, self.min_prefix_tokens)
        self.planned += fed_tokens(encoded, groups)
        self.requests += requests
        self.encoded += encoded
        return [NLLResult(0.0, len(e.ids) - e.answer_start, e.truncated) for e in encoded]


def reuse_view(name: str, corpus, queries, pools, tokenizer_name: str, references: bool = False) -> dict:
    """The view's figures for one job (see the module docstring); ``references`` adds other plans' shares."""
    from uae.labeling import label_pools
    from uae.teachers.hf import MIN_PREFIX_TOKENS
    from uae.teachers.prefix import fed_tokens, prefix_groups

    counter = TokenCounter(tokenizer_name, MIN_PREFIX_TOKENS)
    with tempfile.TemporaryDirectory() as out:
        summary = label_pools(queries, pools, corpus, counter, out, progress=False)
    groups, _ = prefix_groups(counter.requests, counter.encoded, min_prefix_tokens=1)
    total = sum(len(e.ids) for e in counter.encoded)
    bound = fed_tokens(counter.encoded, groups)
    per_passage = Counter(c.passage_id for q in queries for c in pools[q.id])
    view = {
        "dataset": name, "questions": len(queries), "rows": len(counter.encoded), "unique_passages": len(per_passage),
        "pools_per_passage": sum(per_passage.values()) / max(len(per_passage), 1), "tokens": total,
        "tokens_per_row": total / max(len(counter.encoded), 1), "bound_tokens": bound, "planned_tokens": counter.planned,
        "bound_factor": total / bound, "planned_factor": total / counter.planned,
        "share_of_bound": (total / counter.planned) / (total / bound), "truncated": summary.truncated,
    }
    if references:
        view["references"] = {label: bound / planned_tokens(counter, queries, pools, corpus, plan)
                              for label, plan in reference_plans(queries, pools, corpus).items()}
    return view


PART_QUERIES = 64
"""The planner's default part size (``uae label --part-queries``), which the references keep or vary."""


def reference_plans(queries, pools, corpus) -> dict:
    """Other ways to cut the same job into parts, to place the planner's share (``{label: parts or part size}``).

    ``random``: the queries shuffled into parts of 64 (what ordering gains over chance); ``KaHyPar``:
    a multilevel hypergraph partitioner minimising the same quantity, each passage's tokens times
    the parts it is in (connectivity - 1), into as many parts of at most 64 queries (when the
    ``kahypar`` package is installed: what a strong offline partitioner reaches); the planner with
    parts of 256 queries (what a coarser unit of resumption buys).
    """
    import random

    shuffled = list(queries)
    random.Random(13).shuffle(shuffled)
    plans: dict = {"random parts of 64": [shuffled[i: i + PART_QUERIES] for i in range(0, len(shuffled), PART_QUERIES)]}
    kahypar_parts = kahypar_plan(queries, pools, corpus, -(-len(queries) // PART_QUERIES))
    if kahypar_parts is not None:
        plans["KaHyPar (km1), parts of 64"] = kahypar_parts
    plans["planner, parts of 256"] = 256
    return plans


KAHYPAR_SETTINGS = {
    "mode": "direct", "objective": "km1", "seed": 13, "cmaxnet": 1000, "vcycles": 0, "p-use-sparsifier": "false",
    "p-detect-communities": "true", "p-detect-communities-in-ip": "true", "p-reuse-communities": "false",
    "p-max-louvain-pass-iterations": 100, "p-min-eps-improvement": 0.0001, "p-louvain-edge-weight": "hybrid",
    "p-large-he-threshold": 1000, "p-smallest-maxnet-threshold": 50000, "p-maxnet-removal-factor": 0.01,
    "c-type": "ml_style", "c-s": 1, "c-t": 160, "c-rating-score": "heavy_edge", "c-rating-use-communities": "true",
    "c-rating-heavy_node_penalty": "no_penalty", "c-rating-acceptance-criterion": "best_prefer_unmatched",
    "c-fixed-vertex-acceptance-criterion": "fixed_vertex_allowed", "i-mode": "recursive", "i-technique": "multi",
    "i-c-type": "ml_style", "i-c-s": 1, "i-c-t": 150, "i-c-rating-score": "heavy_edge", "i-c-rating-use-communities": "true",
    "i-c-rating-heavy_node_penalty": "no_penalty", "i-c-rating-acceptance-criterion": "best_prefer_unmatched",
    "i-c-fixed-vertex-acceptance-criterion": "fixed_vertex_allowed", "i-algo": "pool", "i-runs": 20,
    "i-bp-algorithm": "worst_fit", "i-bp-heuristic-prepacking": "false", "i-bp-early-restart": "true",
    "i-bp-late-restart": "true", "i-r-type": "twoway_fm", "i-r-runs": -1, "i-r-fm-stop": "simple", "i-r-fm-stop-i": 50,
    "r-type": "kway_fm_km1", "r-runs": -1, "r-fm-stop": "adaptive_opt", "r-fm-stop-alpha": 1, "r-fm-stop-i": 350,
}
"""KaHyPar's direct k-way connectivity preset (its documented km1 settings, without the flow refinement)."""


def kahypar_plan(queries, pools, corpus, k: int) -> list | None:
    """``k`` balanced parts of ``queries`` by KaHyPar: queries are vertices, each shared passage a net weighted by its words."""
    try:
        import kahypar
    except ImportError:
        return None
    if k < 2:
        return [list(queries)]
    holders: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        for candidate in pools[query.id]:
            holders.setdefault(candidate.passage_id, []).append(i)
    nets = [(pid, members) for pid, members in holders.items() if len(members) > 1]
    indices, pins = [0], []
    for _, members in nets:
        pins += members
        indices.append(len(pins))
    weights = [len(corpus[pid].full_text.split()) + 1 for pid, _ in nets]
    graph = kahypar.Hypergraph(len(queries), len(nets), indices, pins, k, weights, [1] * len(queries))
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as ini:
        ini.write("".join(f"{key}={value}\n" for key, value in KAHYPAR_SETTINGS.items()))
    context = kahypar.Context()
    context.loadINIconfiguration(ini.name)
    os.unlink(ini.name)
    context.setK(k)
    context.setEpsilon(0.0)
    context.suppressOutput(True)
    kahypar.partition(graph, context)
    parts: list[list] = [[] for _ in range(k)]
    for i, query in enumerate(queries):
        parts[graph.blockID(i)].append(query)
    return [part for part in parts if part]


def planned_tokens(counter: TokenCounter, queries, pools, corpus, plan) -> int:
    """Tokens the hf teacher feeds for the job under ``plan``: a part size for the planner, or the parts themselves."""
    from unittest import mock

    from uae.labeling import label_pools

    counter.reset()
    with tempfile.TemporaryDirectory() as out:
        if isinstance(plan, int):
            label_pools(queries, pools, corpus, counter, out, part_queries=plan, progress=False)
        else:  # the labeling job cuts its parts with cut_parts; hand it these instead
            with mock.patch("uae.labeling.jobs.cut_parts", lambda *_: plan):
                label_pools(queries, pools, corpus, counter, out, part_queries=max(len(p) for p in plan), progress=False)
    return counter.planned


# ---- 2. the timing ---------------------------------------------------------------------------


def timing_job(corpus, queries, pools, n_questions: int):
    """The first ``n_questions`` queries in the planner's walk order (whole documents), with their pools."""
    from uae.labeling.order import query_walk

    chosen = [q for group in query_walk(queries, pools) for q in group][:n_questions]
    return corpus, chosen, {q.id: pools[q.id] for q in chosen}


def build_model(folder: Path, shape: dict, tokenizer_name: str) -> Path:
    """Save a random-weight Qwen2 causal LM of ``shape`` (no tokenizer: every path is given :func:`tokenizer_path`)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name, local_files_only=Path(tokenizer_name).is_dir())
    config = Qwen2Config(**shape, max_position_embeddings=CONTEXT, tie_word_embeddings=True,
                         bos_token_id=None, eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


class RssSampler:
    """Highest resident set size seen while running, sampled every 5 ms."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.start = self._process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class PathTeacher:
    """The teacher of one timed path, as a context manager (the openai one owns a server)."""

    def __init__(self, path: str, model_dir: str, tokenizer_name: str, batch_tokens: int, concurrency: int) -> None:
        self.path, self.model_dir, self.tokenizer_name = path, model_dir, tokenizer_name
        self.batch_tokens, self.concurrency = batch_tokens, concurrency
        self._server = None

    def __enter__(self):
        from uae.teachers.hf import HFTeacher
        from uae.teachers.openai import OpenAICompatTeacher
        from uae.testing import serve

        if self.path == "openai":
            self._server = serve(self.model_dir, tokenizer=self.tokenizer_name)
            return OpenAICompatTeacher(self._server.__enter__().base_url, concurrency=self.concurrency)
        teacher = HFTeacher(self.model_dir, batch_tokens=self.batch_tokens, device="cpu", tokenizer=self.tokenizer_name,
                            full_logits=self.path == "full-logits", prefix_reuse=self.path == "reuse")
        if self.path == "reuse" and not teacher.reuse.enabled:
            raise RuntimeError(f"prefix reuse is off for this model ({teacher.reuse.reason}); nothing to time")
        return teacher

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.__exit__(*exc)


def measure(path: str, model_dir: str, job, tokenizer_name: str, batch_tokens: int, concurrency: int) -> dict:
    """Label ``job`` along ``path`` in this (fresh) process: time, memory, tokens fed and NLLs."""
    import torch

    from uae.labeling import label_pools, read_labels
    from uae.teachers.base import NLLRequest

    corpus, queries, pools = job
    warmup = [NLLRequest("what is this?", "a warm-up", corpus[pools[queries[0].id][0].passage_id].full_text)] * 2
    with tempfile.TemporaryDirectory() as out, PathTeacher(path, model_dir, tokenizer_name, batch_tokens, concurrency) as teacher:
        teacher.score(warmup)
        with RssSampler() as rss:
            started, cpu_started = time.perf_counter(), _cpu_seconds()
            summary = label_pools(queries, pools, corpus, teacher, out, progress=False)
            seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
        nlls = {(r.query_id, r.passage_id, r.answer_index): r.nll for r in read_labels(out)}
    return {"path": path, "seconds": seconds, "cpu_seconds": cpu_seconds, "nlls": nlls, "fed_tokens": summary.tokens,
            "teacher_stats": summary.teacher_stats, "scoring_rss_increase_mib": (rss.peak - rss.start) / 2**20,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": torch.get_num_threads()}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_paths(paths: list[str], model_dir: Path, job, tokenizer_name: str, args) -> list[dict]:
    """Each path in a fresh spawned process, one after the other."""
    results = []
    for path in paths:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            result = pool.submit(measure, path, str(model_dir), job, tokenizer_name, args.batch_tokens, args.concurrency).result()
        rows = len(result["nlls"])
        result.update(rows=rows, rows_per_s=rows / result["seconds"])
        results.append(result)
        fed = "" if result["fed_tokens"] is None else f", {result['fed_tokens'] / result['seconds']:,.0f} fed tokens/s"
        print(f"  {path:12s} {result['seconds']:8.1f} s ({result['cpu_seconds']:.1f} CPU s)  {result['rows_per_s']:6.2f} rows/s"
              f"{fed}  peak RSS {result['peak_rss_mib']:,.0f} MiB", flush=True)
    return results


# ---- report ----------------------------------------------------------------------------------


def view_lines(views: list[dict], sources: dict[str, str]) -> list[str]:
    labels = list(dict.fromkeys(label for v in views for label in v.get("references", {})))
    rows = [f"| {v['dataset']} | {v['questions']} | {v['rows']} | {v['unique_passages']} | {v['pools_per_passage']:.1f} | "
            f"{v['tokens_per_row']:.0f} | {v['bound_factor']:.2f}x | {v['planned_factor']:.2f}x | {v['share_of_bound']:.1%} | "
            f"{'met' if v['share_of_bound'] >= AIM_SHARE else 'missed'} | "
            + "".join(f"{v['references'][label]:.1%} | " if label in v.get("references", {}) else "n/a | " for label in labels)
            for v in views]
    return [
        "Pair-versus-unique view: prompt + answer tokens of all rows / tokens after sharing a passage's (or a question's) "
        "prompt prefix; bound: every shared prefix once per job; planned: the hf teacher's sharing inside the "
        "planner's parts (64 queries at most) and chunks (256 requests), with its 16-token minimum. The last columns "
        "place the planner: the share of the bound (same tokens, same teacher) when the same job is cut into random "
        "parts of 64, by KaHyPar (a multilevel hypergraph partitioner minimising the same connectivity objective, "
        "as many parts of at most 64 queries; only where the `kahypar` package is installed), and by the planner "
        "with parts of 256 queries.",
        "",
        "| dataset | questions | rows | unique passages | pools per passage | tokens per row | bound | planned | planned / bound | aim >= 75% | "
        + "".join(f"{label} | " for label in labels),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|" + "---:|" * len(labels),
        *rows,
        "",
        *(f"- {name}: pools {source}" for name, source in sources.items()),
    ]


def timing_lines(results: list[dict], job_view: dict, full_view: dict | None, shape: dict, args) -> tuple[list[str], dict]:
    reference = results[0]["nlls"]
    for result in results:
        result["max_nll_diff"] = max(abs(result["nlls"][k] - reference[k]) for k in reference)
    tokens = job_view["tokens"]
    rows = [f"| {r['path']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['rows_per_s']:.2f} | {tokens / r['seconds']:,.0f} | "
            f"{'' if r['fed_tokens'] is None else format(r['fed_tokens'] / r['seconds'], ',.0f')} | {r['peak_rss_mib']:,.0f} | "
            f"{r['scoring_rss_increase_mib']:,.0f} | {r['max_nll_diff']:.1e} |" for r in results]
    by_path = {r["path"]: r for r in results}
    figures: dict = {}
    lines = [
        f"Timing: {job_view['questions']} SQuAD-scoped training questions (the first in the planner's walk order), "
        f"{job_view['rows']} rows, {tokens:,} prompt + answer tokens ({job_view['tokens_per_row']:.0f} per row), "
        f"{job_view['pools_per_passage']:.1f} pools per passage"
        + (f" (the full job of {full_view['questions']} questions: {full_view['pools_per_passage']:.1f})" if full_view else "")
        + f"; Qwen2 shape {shape} at random weights, float32, CPU, batch_tokens {args.batch_tokens}.",
        "",
        "| path | wall s | CPU s | rows/s | tokens/s (all rows) | fed tokens/s | peak RSS MiB | RSS increase while scoring MiB | max abs NLL diff vs first |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    if "uncached" in by_path and "reuse" in by_path:
        speedup = by_path["reuse"]["rows_per_s"] / by_path["uncached"]["rows_per_s"]
        cpu_speedup = by_path["uncached"]["cpu_seconds"] / by_path["reuse"]["cpu_seconds"]
        difference = max(abs(by_path["reuse"]["nlls"][k] - by_path["uncached"]["nlls"][k]) for k in reference)
        figures = {"reuse speed-up": speedup, "token bound": job_view["bound_factor"], "max NLL diff": f"{difference:.1e}"}
        lines += ["", f"Reuse against uncached: **{speedup:.2f}x** rows/s by wall time ({cpu_speedup:.2f}x by CPU time), "
                      f"token-reuse bound of this job {job_view['bound_factor']:.2f}x (planned {job_view['planned_factor']:.2f}x); "
                      f"largest NLL difference {difference:.1e}. Aim >= {AIM_SPEEDUP:g}x: "
                      f"{'met' if speedup >= AIM_SPEEDUP else 'missed'}; NLLs within {AIM_NLL:g}: "
                      f"{'met' if difference <= AIM_NLL else 'missed'}."]
    return lines, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small model body, 6 timed questions, 80 questions per dataset in the view")
    parser.add_argument("--questions", type=int, help="SQuAD questions to time (default 1000; quick 6)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"the view's datasets, comma-separated ({', '.join(DATASETS)}); '' for none")
    parser.add_argument("--view-limit", type=int, help="questions per dataset in the view (default all pooled; quick 80)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="where bench/quality.py's runs keep their pools")
    parser.add_argument("--paths", default="uncached,reuse", help=f"timed paths, comma-separated subset of {PATHS}; '' for none")
    parser.add_argument("--batch-tokens", type=int, default=4096, help="hf: padded tokens per forward pass")
    parser.add_argument("--concurrency", type=int, default=2, help="openai: requests in flight")
    parser.add_argument("--tokenizer", help="a tokenizer folder for the text (default the packaged MiniLM)")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if unknown := [n for n in names if n not in DATASETS] + [p for p in paths if p not in PATHS]:
        parser.error(f"unknown datasets or paths {unknown}; datasets: {list(DATASETS)}, paths: {list(PATHS)}")
    if paths and "squad" not in names:
        names.insert(0, "squad")  # the timing runs on SQuAD's pools
    n_questions = args.questions or (6 if args.quick else 1000)
    view_limit = args.view_limit or (80 if args.quick else None)
    shape = QUICK if args.quick else FULL
    tokenizer_name = tokenizer_path(args.tokenizer)

    command, info = command_line(__file__), machine()
    print(f"command: {command}\nmachine: {describe_machine(info)}", flush=True)
    views, sources, jobs = [], {}, {}
    for name in names:
        started = time.perf_counter()
        corpus, queries, pools, sources[name] = dataset_pools(DATASETS[name], args.runs, view_limit)
        jobs[name] = (corpus, queries, pools)
        views.append(reuse_view(DATASETS[name].title, corpus, queries, pools, tokenizer_name, references=True))
        v = views[-1]
        others = ", ".join(f"{label} {share:.0%}" for label, share in v["references"].items())
        print(f"  {name}: {v['rows']} rows, {v['unique_passages']} passages ({v['pools_per_passage']:.1f} pools each), "
              f"bound {v['bound_factor']:.2f}x, planned {v['planned_factor']:.2f}x ({v['share_of_bound']:.0%} of the bound; "
              f"{others}) [{time.perf_counter() - started:.0f} s]", flush=True)
    lines = [section_heading("Labeling cost: pairs against unique passages, uncached against prefix reuse", args.quick), "",
             f"Command: `{command}`  ", f"Machine: {describe_machine(info)}.  ",
             f"Tokenizer: {'the packaged MiniLM (WordPiece)' if not args.tokenizer else args.tokenizer}; context {CONTEXT}.", ""]
    lines += view_lines(views, sources)
    figures: dict = {f"{v['dataset'].split(',')[0]} planned/bound": v["share_of_bound"] for v in views}
    if paths:
        job = timing_job(*jobs["squad"], n_questions)
        job_view = reuse_view("SQuAD timing job", *job, tokenizer_name)
        full_view = views[names.index("squad")]
        print(f"timing {paths} on {job_view['questions']} questions, {job_view['rows']} rows, {job_view['tokens']:,} tokens", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            model_dir = build_model(Path(folder) / "model", shape, tokenizer_name)
            print(f"model: Qwen2 {shape}, random weights, built in {time.perf_counter() - started:.0f} s", flush=True)
            results = time_paths(paths, model_dir, job, tokenizer_name, args)
        timing, timed = timing_lines(results, job_view, full_view, shape, args)
        lines += ["", *timing]
        figures.update(timed)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if not args.no_write:
        append_benchmarks(text)
    print(result_line(f"labeling{' (quick)' if args.quick else ''}", figures))


if __name__ == "__main__":
    main()
