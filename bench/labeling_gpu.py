"""Labeling on a CUDA GPU: the uncached hf path against passage-prefix reuse, bfloat16, a 1.5B-7B shape at random weights.

    python bench/labeling_gpu.py                        # Qwen2.5-1.5B shape, about 5 minutes on an H100/H200
    python bench/labeling_gpu.py --shape 7b --budget 120     # saving and loading 15 GB takes a few minutes more

The same comparison as ``bench/labeling.py``'s timing, at the size a GPU labels: a Qwen2 model of
the ``--shape`` (``1.5b``: hidden 1536, 28 layers, 12 heads / 2 KV heads, intermediate 8960;
``3b``: 2048, 36, 16 / 2, 11008; ``7b``: 3584, 28, 28 / 4, 18944; vocab 151936 or 152064) is built
at random weights directly on the GPU in bfloat16 (speed does not depend on weight values), saved
and loaded by the hf teacher as a user's model would be.

Requests: SQuAD-scoped training questions with pools of 16, from ``RUNS/q-squad/pools.parquet`` and
``../shared/data/squad`` when both are there (``bench/quality.py``'s pools), else a synthetic job of
the same shape (documents of 43 passages of three quickstart passages each, 35 questions per
document, pools of 16 passages of the question's document: a passage sits in about 13 pools);
the output says which. ``--questions`` (default 1000) are cut into the labeling planner's parts and
chunks (:mod:`uae.labeling.order`), exactly as ``uae label`` sends them to the teacher.

Timing: the uncached path scores chunk after chunk until ``--budget`` seconds have passed (or the
job is done); the reuse path then scores exactly the same chunks. Reported per path: rows/s,
tokens/s (prompt + answer tokens of those rows; and the tokens actually fed), the model FLOPs each
path executed (matmuls, attention over the context each token sees, the LM head on answer
positions only; padding not counted) per second, and the model FLOPs utilisation against the
device's bf16 dense peak (a table of known devices, or ``--peak-tflops``), and the largest NLL
difference between the paths (bf16: expect about 1e-2, not the float32 1e-4 of the CPU tests).
Peak GPU memory is ``torch.cuda.max_memory_allocated``.

Without CUDA the script refuses (exit code 2): on a CPU, use ``bench/labeling.py``. It has not
run on a GPU yet where BENCHMARKS.md does not say so.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED_DATA, append_benchmarks, command_line, describe_machine, machine, result_line, section_heading  # noqa: E402

SHAPES = {
    "1.5b": {"hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
             "intermediate_size": 8960, "vocab_size": 151936, "tie_word_embeddings": True},
    "3b": {"hidden_size": 2048, "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
           "intermediate_size": 11008, "vocab_size": 151936, "tie_word_embeddings": True},
    "7b": {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
           "intermediate_size": 18944, "vocab_size": 152064, "tie_word_embeddings": False},
}
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("H800", 989.0), ("GH200", 989.0),
                    ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
                    ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0))
"""Dense bf16 tensor-core peaks (vendor data sheets, without sparsity), matched in order on the device name."""
CONTEXT = 4096


# ---- the job ---------------------------------------------------------------------------------


def squad_job(runs: Path, n_questions: int):
    """``(corpus, queries, pools, description)`` from bench/quality.py's SQuAD pools, or ``None`` when they are not here."""
    pools_file = runs / "q-squad" / "pools.parquet"
    if not pools_file.is_file() or not (SHARED_DATA / "squad").is_dir():
        return None
    from uae.data.loaders import load
    from uae.data.tables import read_pools
    from uae.labeling.order import query_walk

    dataset = load("squad-v1.1", SHARED_DATA / "squad", scoped=True).dataset
    pools = read_pools(pools_file)
    queries = [dataset.queries[qid] for qid in pools]
    chosen = [q for group in query_walk(queries, pools) for q in group][:n_questions]
    return dataset.corpus, chosen, {q.id: pools[q.id] for q in chosen}, f"SQuAD v1.1 scoped, pools of {pools_file}"


def synthetic_job(n_questions: int, seed: int = 0):
    """A SQuAD-shaped scoped job from the quickstart set (see the module docstring)."""
    from uae.data.schema import Corpus, Passage, Query
    from uae.data.synthetic import make_quickstart_dataset
    from uae.data.tables import Candidate

    data = make_quickstart_dataset()
    rng = random.Random(seed)
    texts, source = data.corpus.texts, list(data.queries.values())
    passages, queries, pools = [], [], {}
    for doc in range((n_questions + 34) // 35):
        ids = [f"d{doc}-p{i}" for i in range(43)]
        passages += [Passage(pid, " ".join(rng.sample(texts, 3)), doc_id=f"d{doc}") for pid in ids]
        for i in range(min(35, n_questions - len(queries))):
            asked = rng.choice(source)
            query = Query(f"d{doc}-q{i}", asked.text, asked.answers, doc_id=f"d{doc}")
            queries.append(query)
            pools[query.id] = [Candidate(pid, 1.0, j == 0) for j, pid in enumerate(rng.sample(ids, 16))]
    return Corpus(passages), queries, pools, "synthetic SQuAD-shaped job (no SQuAD pools here)"


def job_chunks(corpus, queries, pools, part_queries: int = 64, chunk: int = 256) -> list[list]:
    """The requests as ``uae label`` hands them to the teacher: planner's parts, then sharing chunks."""
    from uae.labeling.jobs import part_requests
    from uae.labeling.order import cut_parts, sharing_chunks

    chunks = []
    for part in cut_parts(queries, pools, part_queries):
        requests, _ = part_requests(part, pools, corpus)
        chunks += [[requests[i] for i in indices] for indices in sharing_chunks(requests, chunk)]
    return chunks


# ---- FLOPs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What a forward pass costs per token, from a Qwen2 config's sizes."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int

    @classmethod
    def of(cls, config: dict) -> Shape:
        return cls(config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
                   config["num_key_value_heads"], config["intermediate_size"], config["vocab_size"])

    def matmul_flops(self, tokens: int) -> int:
        """Projections and MLP: ``2 * parameters`` per token (q, k, v, o; gate, up, down), all layers."""
        head_dim = self.hidden // self.heads
        per_layer = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_dim + 3 * self.hidden * self.intermediate
        return 2 * per_layer * self.layers * tokens

    def attention_flops(self, first: int, tokens: int) -> int:
        """Scores and weighted values of ``tokens`` new tokens after ``first`` cached ones (each sees itself and all before)."""
        seen = tokens * first + tokens * (tokens + 1) // 2
        return 4 * self.hidden * self.layers * seen

    def head_flops(self, scored: int) -> int:
        return 2 * self.hidden * self.vocab * scored


def path_flops(shape: Shape, encoded: Sequence, groups: Sequence) -> int:
    """Model FLOPs of scoring ``encoded`` with ``groups`` sharing their prefixes (none: uncached); padding not counted."""
    in_group = {i for group in groups for i in group.members}
    total = 0
    for index, item in enumerate(encoded):
        if index not in in_group:
            total += shape.matmul_flops(item.input_length) + shape.attention_flops(0, item.input_length)
        total += shape.head_flops(len(item.ids) - item.answer_start)
    for group in groups:
        prefix = group.prefix_length
        total += shape.matmul_flops(prefix) + shape.attention_flops(0, prefix)
        for index in group.members:
            width = encoded[index].input_length - prefix
            total += shape.matmul_flops(width) + shape.attention_flops(prefix, width)
    return total


def peak_tflops(device_name: str, override: float | None) -> float | None:
    """The device's dense bf16 peak in TFLOP/s: ``override``, else :data:`PEAK_BF16_TFLOPS`, else ``None``."""
    if override:
        return override
    return next((peak for name, peak in PEAK_BF16_TFLOPS if name in device_name), None)


# ---- timing ----------------------------------------------------------------------------------


def time_chunks(teacher, chunks: list[list], budget: float | None, synchronize: Callable[[], None]) -> tuple[float, int, list[float]]:
    """Score chunks in order until ``budget`` seconds have passed; ``(seconds, chunks done, NLLs)``."""
    nlls: list[float] = []
    started = time.perf_counter()
    done = 0
    for chunk in chunks:
        nlls += [result.nll for result in teacher.score(chunk)]
        done += 1
        synchronize()
        if budget is not None and time.perf_counter() - started >= budget:
            break
    return time.perf_counter() - started, done, nlls


def token_counts(teacher, chunks: list[list]) -> tuple[list, list, int, int]:
    """Encoded requests, the reuse groups (positions into them), tokens of all rows and tokens fed with reuse."""
    from uae.teachers.prefix import PrefixGroup, fed_tokens, prefix_groups

    encoded, groups, fed = [], [], 0
    for chunk in chunks:
        items = [teacher.encode(i, r) for i, r in enumerate(chunk)]
        chunk_groups, _ = prefix_groups(chunk, items, teacher.min_prefix_tokens)
        fed += fed_tokens(items, chunk_groups)
        groups += [PrefixGroup(tuple(len(encoded) + m for m in g.members), g.prefix_length) for g in chunk_groups]
        encoded += items
    return encoded, groups, sum(len(e.ids) for e in encoded), fed


def build_model(folder: Path, shape: dict) -> Path:
    """A random Qwen2 of ``shape`` built on the GPU in bfloat16 and saved to ``folder``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**shape, max_position_embeddings=CONTEXT, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device("cuda"):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            model = Qwen2ForCausalLM(config)
        finally:
            torch.set_default_dtype(previous)
    model.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return folder


def run_path(path: str, model_dir: Path, tokenizer: str, batch_tokens: int, chunks: list[list], budget: float | None) -> dict:
    """Load the teacher for ``path``, warm it up, time it on ``chunks``; frees the GPU after."""
    import torch

    from uae.teachers.hf import HFTeacher

    teacher = HFTeacher(str(model_dir), batch_tokens=batch_tokens, device="cuda", dtype="bfloat16", tokenizer=tokenizer,
                        prefix_reuse=path == "reuse")
    if path == "reuse" and not teacher.reuse.enabled:
        raise SystemExit(f"prefix reuse is off for this model ({teacher.reuse.reason}); nothing to compare")
    teacher.score(chunks[0][:8])
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    seconds, done, nlls = time_chunks(teacher, chunks, budget, torch.cuda.synchronize)
    result = {"path": path, "seconds": seconds, "chunks": done, "nlls": nlls, "teacher": teacher,
              "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1.5b", help="the Qwen2 shape at random weights")
    parser.add_argument("--questions", type=int, default=1000, help="SQuAD-scoped questions (pools of 16)")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds the uncached path may run; reuse scores the same chunks")
    parser.add_argument("--batch-tokens", type=int, default=32768, help="padded tokens per forward pass")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, when the table does not know it")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="where bench/quality.py keeps runs/q-squad/pools.parquet")
    parser.add_argument("--tokenizer", help="a tokenizer folder for the text (default the packaged MiniLM)")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench/labeling_gpu.py needs a CUDA GPU and torch.cuda.is_available() is False here; it does not fall back "
              "to the CPU (a 1.5B-7B model would take days there): run bench/labeling.py on a CPU", file=sys.stderr)
        raise SystemExit(2)
    from uae.retrieval.encoders import packaged_minilm_path

    tokenizer = args.tokenizer or str(packaged_minilm_path())
    command, info = command_line(__file__), machine()
    device = torch.cuda.get_device_name(0)
    peak = peak_tflops(device, args.peak_tflops)
    print(f"command: {command}\nmachine: {describe_machine(info)}; {device}, peak bf16 {peak or 'unknown'} TFLOP/s", flush=True)
    corpus, queries, pools, source = squad_job(args.runs, args.questions) or synthetic_job(args.questions)
    chunks = job_chunks(corpus, queries, pools)
    print(f"job: {source}: {len(queries)} questions, {sum(len(c) for c in chunks)} rows in {len(chunks)} chunks", flush=True)

    shape = SHAPES[args.shape]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        model_dir = build_model(Path(folder) / "model", shape)
        print(f"model: Qwen2 {args.shape} {shape}, random bf16 weights, built and saved in {time.perf_counter() - started:.0f} s", flush=True)
        uncached = run_path("uncached", model_dir, tokenizer, args.batch_tokens, chunks, args.budget)
        chunks = chunks[: uncached["chunks"]]
        teacher = uncached.pop("teacher")
        encoded, groups, tokens, fed = token_counts(teacher, chunks)
        del teacher
        torch.cuda.empty_cache()
        reuse = run_path("reuse", model_dir, tokenizer, args.batch_tokens, chunks, None)
        del reuse["teacher"]
    dims = Shape.of(shape)
    rows = len(encoded)
    results = []
    for result, path_groups, path_fed in ((uncached, [], tokens), (reuse, groups, fed)):
        flops = path_flops(dims, encoded, path_groups)
        result.update(rows_per_s=rows / result["seconds"], tokens_per_s=tokens / result["seconds"],
                      fed_per_s=path_fed / result["seconds"], tflops=flops / result["seconds"] / 1e12)
        result["mfu"] = result["tflops"] / peak if peak else None
        results.append(result)
    difference = max(abs(a - b) for a, b in zip(uncached["nlls"], reuse["nlls"]))
    speedup = reuse["rows_per_s"] / uncached["rows_per_s"]
    table = [f"| {r['path']} | {r['seconds']:.1f} | {r['rows_per_s']:.1f} | {r['tokens_per_s']:,.0f} | {r['fed_per_s']:,.0f} | "
             f"{r['tflops']:.1f} | {'n/a' if r['mfu'] is None else format(r['mfu'], '.1%')} | {r['peak_gib']:.1f} |" for r in results]
    lines = [
        section_heading(f"Labeling on a GPU: uncached against prefix reuse, Qwen2 {args.shape} bf16"), "",
        f"Command: `{command}`  ", f"Machine: {describe_machine(info)}; {device} (dense bf16 peak {peak or 'unknown'} TFLOP/s).  ",
        f"Job: {source}; {len(queries)} questions cut into the planner's parts and chunks; the uncached path ran "
        f"{uncached['chunks']} chunks ({rows} rows, {tokens:,} prompt + answer tokens) within {args.budget:g} s, and reuse "
        f"the same chunks; batch_tokens {args.batch_tokens}; model Qwen2 {args.shape} at random weights, bfloat16.", "",
        "| path | s | rows/s | tokens/s (all rows) | fed tokens/s | model TFLOP/s | MFU | peak GiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|", *table, "",
        f"Reuse against uncached: **{speedup:.2f}x** rows/s (token bound {tokens / fed:.2f}x); largest NLL difference "
        f"{difference:.1e} (bf16).",
    ]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if not args.no_write:
        append_benchmarks(text)
    print(result_line(f"labeling gpu {args.shape}", {"uncached rows/s": uncached["rows_per_s"], "reuse rows/s": reuse["rows_per_s"],
                                                      "speed-up": speedup, "reuse MFU": reuse["mfu"] or "n/a"}))


if __name__ == "__main__":
    main()
