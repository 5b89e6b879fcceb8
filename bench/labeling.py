"""Labeling throughput per teacher backend, and answer-only scoring against full-logits scoring.

Every backend labels the same pools with ``uae.labeling.local.label_pools`` in a fresh process (so
peak memory is its own): ``hf`` scoring answer positions only (the default), ``hf`` forced to
the full-logits path (the LM head over every position, as a plain ``model(...).logits`` does),
and ``openai`` against ``uae.testing`` serving the same model on 127.0.0.1 (the
server computes full logits per prompt, one prompt at a time, so this measures the client and
protocol, not vLLM).

The model is a Qwen2 architecture at random weights (speed does not depend on weight values):
by default the Qwen2.5-0.5B shape (hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate
4864, vocab 151936, tied embeddings); ``--quick`` uses a small body and a 32000-entry vocabulary
(the same code path in well under two minutes; its ratio is not the headline figure).
Text is real-looking (passages of the synthetic quickstart set, ``--join`` of them per passage)
tokenised with the packaged MiniLM tokenizer, passed to every backend as a separate tokenizer
(a model folder of type qwen2 would make transformers load a Qwen2 tokenizer over BERT's vocab):
its ids (< 30522) all lie inside the model's vocabulary, and the LM head still projects onto
every entry of it.

A pair is one scored (query, passage or none, answer) row; tokens are the prompt + answer
tokens fed to the model, counted with the same tokenizer for every backend. Besides wall time,
each backend's CPU time (user + system of its process, server included for ``openai``) is
reported: on a machine shared with other work it is the steadier basis for the ratio. Peak
memory is the process's peak resident set (``ru_maxrss``, model loading included) and the
increase of the resident set while scoring (sampled every 5 ms).

    python bench/labeling.py --quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from common import command_line, machine  # noqa: E402  (bench/ is on sys.path when a script runs)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
FULL = {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "intermediate_size": 4864, "vocab_size": 151936}
QUICK = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 1024, "vocab_size": 32000}
BACKENDS = ("hf answer-only", "hf full-logits", "openai")


def tokenizer_path() -> str:
    """The packaged MiniLM (WordPiece) tokenizer, used for the text of every backend."""
    from uae.retrieval.encoders import packaged_minilm_path

    return str(packaged_minilm_path())


def build_model(folder: Path, shape: dict) -> Path:
    """Save a random-weight Qwen2 causal LM of ``shape`` (no tokenizer: see :func:`tokenizer_path`)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path(), local_files_only=True)
    config = Qwen2Config(**shape, max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=None, eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


def build_job(n_queries: int, pool_size: int, join: int, seed: int = 0):
    """Queries of the quickstart set, each with a pool of passages made of ``join`` corpus passages."""
    from uae.data.schema import Corpus, Passage
    from uae.data.synthetic import make_quickstart_dataset
    from uae.data.tables import Candidate

    dataset = make_quickstart_dataset()
    rng = random.Random(seed)
    texts = dataset.corpus.texts
    corpus = Corpus(Passage(f"b{i:04d}", " ".join(rng.sample(texts, join))) for i in range(n_queries * pool_size))
    queries = list(dataset.queries.values())[:n_queries]
    pools = {q.id: [Candidate(f"b{i * pool_size + j:04d}", 1.0, j == 0) for j in range(pool_size)]
             for i, q in enumerate(queries)}
    return corpus, queries, pools


def count_tokens(corpus, queries, pools) -> int:
    """Prompt + answer tokens of every request, tokenised as the hf teacher does."""
    from transformers import AutoTokenizer

    from uae.labeling.jobs import requests_for_query
    from uae.teachers.base import PromptTemplates
    from uae.teachers.causal_lm import encode_prompt_answer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path(), local_files_only=True)
    bos = 0 if tokenizer.bos_token_id is None else 1
    total = 0
    for query in queries:
        for request in requests_for_query(query, [c.passage_id for c in pools[query.id]], corpus)[0]:
            prefix_ids, answer_ids = encode_prompt_answer(tokenizer, PromptTemplates().prefix(request.question, request.passage), request.answer)
            total += bos + len(prefix_ids) + len(answer_ids)
    return total


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


def measure(backend: str, model_dir: str, job, batch_tokens: int, concurrency: int) -> dict:
    """Label ``job`` with ``backend`` in this (fresh) process; time, memory and NLLs."""
    import torch

    from uae.labeling import label_pools, read_labels
    from uae.teachers.base import NLLRequest

    corpus, queries, pools = job
    warmup = [NLLRequest("what is this?", "a warm-up", corpus.texts[0])]
    with tempfile.TemporaryDirectory() as out, _teacher(backend, model_dir, batch_tokens, concurrency) as teacher:
        teacher.score(warmup)
        with RssSampler() as rss:
            started, cpu_started = time.perf_counter(), _cpu_seconds()
            label_pools(queries, pools, corpus, teacher, out, part_queries=len(queries), progress=False)
            seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
        nlls = {(r.query_id, r.passage_id, r.answer_index): r.nll for r in read_labels(out)}
    return {
        "backend": backend,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "nlls": nlls,
        "scoring_rss_increase_mib": (rss.peak - rss.start) / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _teacher:
    """The teacher of ``backend`` as a context manager (the openai one owns a server)."""

    def __init__(self, backend: str, model_dir: str, batch_tokens: int, concurrency: int):
        self.backend, self.model_dir, self.batch_tokens, self.concurrency = backend, model_dir, batch_tokens, concurrency
        self._server = None

    def __enter__(self):
        from uae.teachers.hf import HFTeacher
        from uae.teachers.openai import OpenAICompatTeacher
        from uae.testing import serve

        if self.backend == "openai":
            self._server = serve(self.model_dir, tokenizer=tokenizer_path())
            running = self._server.__enter__()
            return OpenAICompatTeacher(running.base_url, concurrency=self.concurrency)
        full_logits = self.backend != "hf answer-only"
        teacher = HFTeacher(self.model_dir, batch_tokens=self.batch_tokens, device="cpu", tokenizer=tokenizer_path(), full_logits=full_logits)
        if teacher.answer_only == full_logits:
            raise RuntimeError("the answer-only path is not available for this model; nothing to compare")
        return teacher

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.__exit__(*exc)


def main() -> None:
    parser = argparse.ArgumentParser(description="Labeling throughput per backend; answer-only vs full-logits scoring.")
    parser.add_argument("--quick", action="store_true", help="a smaller model body and fewer pairs (< 2 minutes)")
    parser.add_argument("--queries", type=int, default=3, help="queries")
    parser.add_argument("--pool-size", type=int, help="passages per query (default 4, quick 3)")
    parser.add_argument("--join", type=int, help="quickstart passages joined into one pool passage (default 4, quick 2)")
    parser.add_argument("--batch-tokens", type=int, default=4096, help="hf: padded tokens per forward pass")
    parser.add_argument("--concurrency", type=int, default=2, help="openai: requests in flight")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated subset of {BACKENDS}")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",")]
    if unknown := [b for b in backends if b not in BACKENDS]:
        parser.error(f"unknown backends {unknown}; expected some of {BACKENDS}")
    shape = QUICK if args.quick else FULL
    n_queries = args.queries
    args.pool_size = args.pool_size or (3 if args.quick else 4)
    args.join = args.join or (2 if args.quick else 4)

    command = command_line(__file__)
    info = machine()
    print(f"command: {command}")
    print(f"machine: {info['cores']} cores ({info['cpu']}), torch {info['torch']}, python {info['python']}, "
          f"load average {info['load_average']:.1f} (shared machine)")

    job = build_job(n_queries, args.pool_size, args.join)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        model_dir = build_model(Path(folder) / "model", shape)
        tokens = count_tokens(*job)
        pairs = n_queries * (args.pool_size + 1)
        print(f"model: Qwen2 {shape}, random weights, float32, built in {time.perf_counter() - started:.0f} s")
        print(f"job: {n_queries} queries x ({args.pool_size} passages + none) = {pairs} pairs, {tokens} tokens "
              f"({tokens / pairs:.0f} per pair)")
        results = []
        for backend in backends:
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                result = pool.submit(measure, backend, str(model_dir), job, args.batch_tokens, args.concurrency).result()
            result.update(pairs_per_s=pairs / result["seconds"], tokens_per_s=tokens / result["seconds"])
            results.append(result)
            print(f"  {backend:15s} {result['seconds']:7.1f} s ({result['cpu_seconds']:.1f} CPU s)  {result['pairs_per_s']:6.2f} pairs/s  "
                  f"{result['tokens_per_s']:7.0f} tokens/s  peak RSS {result['peak_rss_mib']:6.0f} MiB")
    report(command, info, shape, args, n_queries, pairs, tokens, results)


def report(command: str, info: dict, shape: dict, args, n_queries: int, pairs: int, tokens: int, results: list[dict]) -> None:
    by_name = {r["backend"]: r for r in results}
    reference = results[0]["nlls"]
    for result in results:
        result["max_nll_diff"] = max(abs(result["nlls"][k] - reference[k]) for k in reference)
    ratio = cpu_ratio = None
    if "hf answer-only" in by_name and "hf full-logits" in by_name:
        ratio = by_name["hf full-logits"]["seconds"] / by_name["hf answer-only"]["seconds"]
        cpu_ratio = by_name["hf full-logits"]["cpu_seconds"] / by_name["hf answer-only"]["cpu_seconds"]
    rows = [
        f"| {r['backend']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['pairs_per_s']:.2f} | {r['tokens_per_s']:.0f} | "
        f"{r['peak_rss_mib']:.0f} | {r['scoring_rss_increase_mib']:.0f} | {r['max_nll_diff']:.1e} |"
        for r in results
    ]
    lines = [
        f"\n## Labeling throughput (bench/labeling.py{' --quick' if args.quick else ''}), {dt.date.today().isoformat()}\n",
        f"Command: `{command}`  ",
        f"Machine: {info['cores']} cores ({info['cpu']}), torch {info['torch']}, CPU only; shared with other engineers "
        f"during the run (load average {info['load_average']:.1f} at the start), so absolute rates are low and noisy; "
        f"the ratio is measured in the same run.  ",
        f"Model: Qwen2 architecture at random weights, float32, {shape['num_hidden_layers']} layers, hidden "
        f"{shape['hidden_size']}, {shape['num_attention_heads']} heads / {shape['num_key_value_heads']} KV heads, "
        f"intermediate {shape['intermediate_size']}, vocab {shape['vocab_size']} (tied embeddings); text tokenised with "
        f"the packaged MiniLM tokenizer (ids < 30522, inside the model's vocabulary).  ",
        f"Job: {n_queries} quickstart queries x ({args.pool_size} passages of {args.join} joined quickstart passages + none) = "
        f"{pairs} pairs, {tokens} tokens ({tokens / pairs:.0f} per pair); hf batch_tokens {args.batch_tokens}; openai: "
        f"the in-package testing server (full logits, one prompt per forward) with concurrency {args.concurrency}.\n",
        "| backend | wall s | CPU s | pairs/s | tokens/s | peak RSS MiB | RSS increase while scoring MiB | max abs NLL diff vs first |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    if ratio is not None:
        lines.append(f"\nAnswer-only scoring against full-logits scoring: **{ratio:.2f}x** by wall time, "
                     f"**{cpu_ratio:.2f}x** by CPU time; peak RSS {by_name['hf answer-only']['peak_rss_mib']:.0f} vs "
                     f"{by_name['hf full-logits']['peak_rss_mib']:.0f} MiB.")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        with open(ROOT / "BENCHMARKS.md", "a", encoding="utf-8") as handle:
            if handle.tell() == 0:
                handle.write("# Benchmarks\n\nWritten by the scripts under bench/; each section is one run.\n")
            handle.write(text)
    figures = ", ".join(f"{r['backend']} {r['pairs_per_s']:.2f} pairs/s {r['tokens_per_s']:.0f} tok/s" for r in results)
    print(f"RESULT: labeling{' (quick)' if args.quick else ''}: {figures}"
          + (f"; answer-only/full-logits speed-up {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU" if ratio is not None else ""))


if __name__ == "__main__":
    main()
