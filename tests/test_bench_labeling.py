"""bench/labeling.py's pair-versus-unique view and the pieces of bench/labeling_gpu.py that run without a GPU."""

from __future__ import annotations

import importlib.util
import os.path
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from labeling_jobs import make_job

from uae.teachers import NLLRequest
from uae.teachers.causal_lm import EncodedRequest
from uae.teachers.prefix import PrefixGroup

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench(name: str):
    """Import a bench script as a module (bench/ is not a package)."""
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_view_counts_tokens_and_its_bound_on_token_ids(bpe_lm_builder) -> None:
    bench = _bench("labeling")
    model_dir = bpe_lm_builder("llama")
    corpus, queries, pools = make_job(n_queries=10, pool_size=4, n_passages=8)
    view = bench.reuse_view("tiny", corpus, queries, pools, str(model_dir))
    counter = bench.TokenCounter(str(model_dir), 16)
    encoded, by_key = [], {}
    for query in queries:  # an independent reference: os.path.commonprefix over each passage's (or question's) rows
        for passage in [None] + [corpus[c.passage_id].full_text for c in pools[query.id]]:
            item = counter.encoder.encode(0, NLLRequest(query.text, query.answers[0], passage))
            encoded.append(item)
            by_key.setdefault(passage or query.text, []).append(item)
    total = sum(len(e.ids) for e in encoded)
    saved = sum((len(items) - 1) * min(len(os.path.commonprefix([e.ids for e in items])), min(e.answer_start for e in items) - 1)
                for items in by_key.values() if len(items) > 1)
    assert view["rows"] == len(encoded) == 10 * 5 and view["tokens"] == total
    assert view["bound_tokens"] == total - saved
    assert view["bound_factor"] == pytest.approx(total / (total - saved))
    assert 1 < view["planned_factor"] <= view["bound_factor"]
    assert view["pools_per_passage"] == pytest.approx(40 / len(Counter(c.passage_id for p in pools.values() for c in p)))


def test_the_gpu_bench_refuses_a_machine_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run([sys.executable, str(BENCH / "labeling_gpu.py"), "--no-write"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and "bench/labeling.py" in result.stderr


def test_gpu_bench_flops_against_a_per_token_count() -> None:
    bench = _bench("labeling_gpu")
    shape = bench.Shape(hidden=8, layers=2, heads=2, kv_heads=1, intermediate=16, vocab=50)
    encoded = [EncodedRequest(0, list(range(12)), 9, False), EncodedRequest(1, list(range(10)) + [40, 41], 10, False),
               EncodedRequest(2, list(range(7)), 5, False)]
    groups = [PrefixGroup((0, 1), 6)]
    head_dim = 8 // 2
    per_token = 2 * 2 * (2 * 8 * 8 + 2 * 8 * 1 * head_dim + 3 * 8 * 16)

    def cost(positions: range, scored: int) -> int:  # each fed token: matmuls, plus attention over itself and all before
        return sum(per_token + 2 * 4 * 8 * (position + 1) for position in positions) + 2 * 8 * 50 * scored

    uncached = sum(cost(range(len(e.ids) - 1), len(e.ids) - e.answer_start) for e in encoded)
    assert bench.path_flops(shape, encoded, []) == uncached
    reused = (sum(per_token + 2 * 4 * 8 * (p + 1) for p in range(6))
              + sum(cost(range(6, len(e.ids) - 1), len(e.ids) - e.answer_start) for e in encoded[:2])
              + cost(range(6), 2))
    assert bench.path_flops(shape, encoded, groups) == reused
    assert bench.peak_tflops("NVIDIA H100 PCIe", None) == 756.0 and bench.peak_tflops("NVIDIA H200", None) == 989.0
    assert bench.peak_tflops("Some GPU", None) is None and bench.peak_tflops("Some GPU", 100.0) == 100.0


def test_gpu_bench_job_and_timing_loop_on_the_cpu(bpe_lm_builder) -> None:
    bench = _bench("labeling_gpu")
    corpus, queries, pools, _ = bench.synthetic_job(40)
    assert len(queries) == 40 and {len(pool) for pool in pools.values()} == {16}
    assert all(c.passage_id.split("-")[0] == q.doc_id for q in queries for c in pools[q.id]), "pools stay in the document"
    chunks = bench.job_chunks(corpus, queries[:3], pools, chunk=20)
    from uae.teachers.hf import HFTeacher

    model_dir = str(bpe_lm_builder("qwen2", 1024))
    seconds, done, uncached = bench.time_chunks(HFTeacher(model_dir, prefix_reuse=False), chunks, None, lambda: None)
    assert done == len(chunks) and len(uncached) == sum(len(c) for c in chunks) and seconds > 0
    _, _, reused = bench.time_chunks(HFTeacher(model_dir), chunks, None, lambda: None)
    assert reused == pytest.approx(uncached, abs=1e-4)
    encoded, groups, tokens, fed = bench.token_counts(HFTeacher(model_dir), chunks)
    assert groups and fed < tokens == sum(len(e.ids) for e in encoded)
    _, first_only, _ = bench.time_chunks(HFTeacher(model_dir, prefix_reuse=False), chunks, 0.0, lambda: None)
    assert first_only == 1, "a spent budget stops after the chunk in hand"
