"""Index kinds at scale: build time, memory, single-query latency and recall@10 against exact search.

The vectors are synthetic 384-dimensional unit vectors (the width of all-MiniLM-L6-v2), not
embeddings of text; two distributions, chosen with ``--data``:

- ``lowrank`` (default): ``normalise(W z + noise)`` with ``z`` a 32-dim standard normal, ``W`` a
  fixed random 32 x 384 matrix and isotropic noise of 10% of the signal's norm per coordinate. Like
  sentence embeddings, most of the variance lives in few directions, so nearest neighbours are
  meaningfully nearer than the rest.
- ``uniform``: uniform on the 384-sphere. The worst case for any approximate index: every point is
  almost equally far from a query, so graph and cell searches need to visit a large part of the set.

Queries are fresh draws from the same distribution. The ground truth is exact inner-product search
(``DenseIndex`` kind ``exact``) over the same vectors. Every index goes through ``uae.retrieval.index.DenseIndex``
(the code path the retriever and the server use), so latencies include its bookkeeping.

Latency is one query at a time with FAISS limited to ``--search-threads`` OpenMP threads (default
1: a single query gains nothing from more, and spinning threads hurt on a shared machine); builds
use ``--build-threads``. Memory is the growth of this process's resident set while the index is
built; disk is the size of the folder ``DenseIndex.save`` writes (its time is reported too).

    python bench/index.py --quick                 # 100k vectors
    python bench/index.py                         # 1M vectors
    python bench/index.py --quick --data uniform
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a shared, oversubscribed machine spinning threads
# made IVF-PQ training 8x slower. Read once, when the OpenMP runtime loads, so it must come first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_benchmarks, command_line, describe_machine, machine, result_line, section_heading  # noqa: E402

from uae.data.schema import Passage  # noqa: E402
from uae.retrieval.index import DenseIndex, IndexConfig  # noqa: E402

DIMENSION = 384
LATENT = 32
K = 10
TARGET_RECALL = 0.95


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100k vectors instead of 1M (same code path)")
    parser.add_argument("--n", type=int, help="number of passages (default 1M, --quick 100k)")
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall and ANN latency")
    parser.add_argument("--exact-latency-queries", type=int, default=100, help="queries timed one by one on exact search")
    parser.add_argument("--data", choices=("lowrank", "uniform"), default="lowrank")
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=64)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    parser.add_argument("--nlist", type=int, help="ivfpq cells (default: the index's own, sqrt(n))")
    parser.add_argument("--pq-m", type=int, default=48, help="ivfpq sub-quantizers (48 = 8 dims, 48 bytes per vector)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--kinds", nargs="+", choices=("hnsw", "ivfpq"), default=["hnsw", "ivfpq"],
                        help="approximate kinds to measure (exact always runs: it is the ground truth and the baseline)")
    parser.add_argument("--build-threads", type=int, default=os.cpu_count())
    parser.add_argument("--search-threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


# -- data ---------------------------------------------------------------------------------


def unit_vectors(count: int, kind: str, rng: np.random.Generator, basis: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """``count`` synthetic unit vectors of ``kind`` (see the module notes), made in chunks to bound memory."""
    out = np.empty((count, DIMENSION), dtype=np.float32)
    for start in range(0, count, chunk):
        rows = min(chunk, count - start)
        if kind == "uniform":
            block = rng.standard_normal((rows, DIMENSION), dtype=np.float32)
        else:
            block = rng.standard_normal((rows, LATENT), dtype=np.float32) @ basis
            block += 0.1 * np.sqrt(LATENT) * rng.standard_normal((rows, DIMENSION), dtype=np.float32)
        out[start : start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


# -- measurements -------------------------------------------------------------------------


def build(vectors: np.ndarray, passages: list[Passage], config: IndexConfig, threads: int) -> tuple[DenseIndex, dict]:
    faiss.omp_set_num_threads(threads)
    gc.collect()
    before = current_rss_mib()
    started = time.perf_counter()
    index = DenseIndex.build(vectors, passages, model="synthetic", fingerprint="synthetic", config=config)
    seconds = time.perf_counter() - started
    return index, {"build_s": seconds, "memory_mib": current_rss_mib() - before}


def save_cost(index: DenseIndex) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="uae-bench-index-"))
    try:
        started = time.perf_counter()
        index.save(folder)
        seconds = time.perf_counter() - started
        size = sum(f.stat().st_size for f in folder.iterdir())
    finally:
        shutil.rmtree(folder)
    return {"save_s": seconds, "disk_mib": size / 2**20}


def latency_ms(index: DenseIndex, queries: np.ndarray, threads: int) -> dict:
    faiss.omp_set_num_threads(threads)
    index.search(queries[:1], K)  # warm-up
    times = []
    for row in range(len(queries)):
        started = time.perf_counter()
        index.search(queries[row : row + 1], K)
        times.append(time.perf_counter() - started)
    times = np.asarray(times) * 1000
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)), "timed": len(times)}


def recall_at_k(index: DenseIndex, queries: np.ndarray, truth: list[set[str]], threads: int) -> float:
    faiss.omp_set_num_threads(threads)
    found = index.search(queries, K)
    return float(np.mean([len({h.passage_id for h in hits} & t) / K for hits, t in zip(found, truth)]))


def sweep(index: DenseIndex, knob: str, values: list[int], queries: np.ndarray, truth: list[set[str]], args) -> list[dict]:
    rows = []
    for value in values:
        index.tune(**{knob: value})
        recall = recall_at_k(index, queries, truth, args.build_threads)
        rows.append({knob: value, "recall": recall, **latency_ms(index, queries, args.search_threads)})
        print(f"  {knob}={value}: recall@{K} {recall:.4f}, p50 {rows[-1]['p50_ms']:.3f} ms, p99 {rows[-1]['p99_ms']:.3f} ms",
              flush=True)
    return rows


def measure_exact(vectors: np.ndarray, passages: list[Passage], queries: np.ndarray, args) -> tuple[dict, list[set[str]]]:
    """The baseline: build cost, single-query latency, and the ground-truth top-10 of every query."""
    exact, cost = build(vectors, passages, IndexConfig(kind="exact"), args.build_threads)
    faiss.omp_set_num_threads(args.build_threads)
    truth = [{h.passage_id for h in hits} for hits in exact.search(queries, K)]
    latency = latency_ms(exact, queries[: args.exact_latency_queries], args.search_threads)
    entry = {"params": "IndexFlatIP", **cost, **save_cost(exact), "rows": [{"recall": 1.0, **latency}]}
    print(f"exact: built in {cost['build_s']:.1f} s, p50 {latency['p50_ms']:.2f} ms", flush=True)
    return entry, truth


def measure_hnsw(vectors: np.ndarray, passages: list[Passage], queries: np.ndarray, truth: list[set[str]], args) -> dict:
    config = IndexConfig(kind="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction)
    index, cost = build(vectors, passages, config, args.build_threads)
    print(f"hnsw: built in {cost['build_s']:.1f} s", flush=True)
    rows = sweep(index, "ef_search", args.ef_search, queries, truth, args)
    return {"params": f"M={args.hnsw_m}, efConstruction={args.ef_construction}", **cost, **save_cost(index), "rows": rows}


def measure_ivfpq(vectors: np.ndarray, passages: list[Passage], queries: np.ndarray, truth: list[set[str]], args) -> dict:
    config = IndexConfig(kind="ivfpq", nlist=args.nlist, pq_m=args.pq_m, nbits=8)
    index, cost = build(vectors, passages, config, args.build_threads)
    print(f"ivfpq: built in {cost['build_s']:.1f} s (nlist {index.config.nlist})", flush=True)
    rows = sweep(index, "nprobe", args.nprobe, queries, truth, args)
    return {"params": f"nlist={index.config.nlist}, PQ{args.pq_m}x8", **cost, **save_cost(index), "rows": rows}


# -- report -------------------------------------------------------------------------------


def headline(results: dict, count: int, data: str) -> dict[str, str]:
    exact_p50 = results["exact"]["rows"][0]["p50_ms"]
    figures = {"n": f"{count:,}", "data": data}
    if "hnsw" in results:
        best = pick(results["hnsw"]["rows"])
        figures["hnsw"] = (f"{results['hnsw']['params']} ef_search={best['ef_search']} recall@10 {best['recall']:.4f} "
                           f"p50 {best['p50_ms']:.3f} ms ({exact_p50 / best['p50_ms']:.0f}x faster than exact) "
                           f"build {results['hnsw']['build_s']:.0f} s")
    if "ivfpq" in results:
        best = pick(results["ivfpq"]["rows"])
        figures["ivfpq"] = (f"nprobe={best['nprobe']} recall@10 {best['recall']:.4f} p50 {best['p50_ms']:.3f} ms "
                            f"disk {results['ivfpq']['disk_mib']:.0f} MiB vs exact {results['exact']['disk_mib']:.0f} MiB")
    figures["exact p50 ms"] = f"{exact_p50:.2f}"
    return figures


def pick(rows: list[dict]) -> dict:
    """The fastest setting reaching the target recall, else the most accurate one."""
    good = [r for r in rows if r["recall"] >= TARGET_RECALL]
    return min(good, key=lambda r: r["p50_ms"]) if good else max(rows, key=lambda r: r["recall"])


def table(results: dict, exact_p50: float) -> str:
    lines = ["| kind | setting | build s | memory MiB | disk MiB | save s | recall@10 | p50 ms | p99 ms | p50 speed-up vs exact |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, entry in results.items():
        for row in entry["rows"]:
            setting = ", ".join(f"{k}={v}" for k, v in row.items() if k in ("ef_search", "nprobe")) or "-"
            lines.append(
                f"| {kind} | {entry['params']}{'; ' + setting if setting != '-' else ''} | {entry['build_s']:.1f} | "
                f"{entry['memory_mib']:.0f} | {entry['disk_mib']:.0f} | {entry['save_s']:.1f} | {row['recall']:.4f} | "
                f"{row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {exact_p50 / row['p50_ms']:.1f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    count = args.n or (100_000 if args.quick else 1_000_000)
    info = machine()
    command = command_line(__file__)
    print(f"command: {command}")
    print(f"machine: {describe_machine(info)}; faiss {faiss.__version__}, numpy {np.__version__}")
    print(f"faiss threads: build {args.build_threads}, search {args.search_threads} (omp_set_num_threads), "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")

    rng = np.random.default_rng(args.seed)
    basis = rng.standard_normal((LATENT, DIMENSION), dtype=np.float32)
    started = time.perf_counter()
    vectors = unit_vectors(count, args.data, rng, basis)
    queries = unit_vectors(args.queries, args.data, rng, basis)
    passages = [Passage(f"p{i}", "") for i in range(count)]
    print(f"data: {count:,} {args.data} {DIMENSION}-dim unit vectors, {args.queries} queries "
          f"({time.perf_counter() - started:.1f} s)", flush=True)

    results: dict[str, dict] = {}
    results["exact"], truth = measure_exact(vectors, passages, queries, args)
    if "hnsw" in args.kinds:
        results["hnsw"] = measure_hnsw(vectors, passages, queries, truth, args)
    if "ivfpq" in args.kinds:
        results["ivfpq"] = measure_ivfpq(vectors, passages, queries, truth, args)

    exact_p50 = results["exact"]["rows"][0]["p50_ms"]
    report = table(results, exact_p50)
    print(report)
    figures = headline(results, count, args.data)
    section = "\n".join([
        section_heading(f"Index kinds, {count:,} passages ({args.data} vectors)", args.quick),
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {describe_machine(info)}; faiss {faiss.__version__}, numpy {np.__version__}.",
        "",
        f"Data: {count:,} synthetic {DIMENSION}-dim unit vectors ({args.data}: "
        + ("normalise(W z + noise), z 32-dim normal, noise 10% per coordinate" if args.data == "lowrank"
           else "uniform on the sphere, the worst case for approximate search")
        + f"), {args.queries} queries from the same distribution; not text embeddings. Recall@10 against exact "
        f"search on all {args.queries} queries. Latency: one query at a time through `DenseIndex.search`, FAISS at "
        f"{args.search_threads} OpenMP thread(s) ({args.exact_latency_queries} queries for exact, {args.queries} for the "
        f"others); builds at {args.build_threads} thread(s); OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}. Memory: resident-set growth during the build (for IVF-PQ it includes the training sample and k-means buffers; "
        "disk is the index alone). "
        f"Speed-up: exact p50 / this p50, same run.",
        "",
        report,
        "",
        "Headline: " + "; ".join(f"{name} {value}" for name, value in figures.items()) + ".",
    ])
    if not args.no_write:
        print(f"appended to {append_benchmarks(section)}")
    print(result_line(f"index kinds{' (quick)' if args.quick else ''}", figures))


if __name__ == "__main__":
    main()
