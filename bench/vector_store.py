"""The Milvus backend beside FAISS: recall@10 against exact search and single-query p50 latency, in one run.

Same synthetic vectors as ``bench/index.py`` (384-dim ``lowrank`` unit vectors, not text
embeddings). Three indexes over the same passages, each through the class the retriever and the
server use:

- ``faiss exact``: ``DenseIndex`` kind ``exact``, the ground truth;
- ``faiss hnsw``: ``DenseIndex`` kind ``hnsw`` (``--hnsw-m``, ``--ef-construction``, ``--ef-search``);
- ``milvus``: ``MilvusIndex`` (``uae index --backend milvus``), embedded Milvus Lite in a temporary
  folder by default (Milvus Lite builds FLAT only, so its recall is 1 and its latency is that of
  the engine's brute force plus a local gRPC round trip), or a Milvus server with ``--uri``
  (then ``--milvus-kind hnsw`` builds the real HNSW graph).

Latency is one query at a time (the server's unbatched case), p50 over ``--queries`` queries. The
load average is recorded before and after; a run whose load average exceeds the cores is flagged
and its latencies are not a headline.

    python bench/vector_store.py              # 100,000 passages
    python bench/vector_store.py --quick      # 5,000 passages (a smoke run)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_benchmarks, command_line, describe_machine, machine, result_line, section_heading  # noqa: E402
from index import DIMENSION, LATENT, unit_vectors  # noqa: E402

from uae.data.schema import Passage  # noqa: E402
from uae.retrieval.index import DenseIndex, IndexConfig  # noqa: E402

K = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 passages instead of 100,000 (same code path)")
    parser.add_argument("--n", type=int, help="number of passages (default 100,000, --quick 5,000)")
    parser.add_argument("--queries", type=int, default=200, help="queries for recall and latency")
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=64)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--uri", help="a Milvus server (http://host:19530); default embedded Milvus Lite in a temporary folder")
    parser.add_argument("--milvus-kind", choices=("exact", "hnsw"), default="exact", help="the Milvus index type (Lite builds FLAT only)")
    parser.add_argument("--threads", type=int, default=1, help="FAISS OpenMP threads for search")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def timed_search(index, queries: np.ndarray) -> tuple[list[list[str]], float]:
    """Top-K ids of each query (one query per call) and the p50 latency in ms."""
    found, times = [], []
    for vector in queries:
        started = time.perf_counter()
        hits = index.search(vector[None, :], K)[0]
        times.append(time.perf_counter() - started)
        found.append([h.passage_id for h in hits])
    return found, 1000 * float(np.median(times))


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main() -> None:
    args = parse_args()
    count = args.n or (5_000 if args.quick else 100_000)
    faiss.omp_set_num_threads(args.threads)
    info = machine()
    command = command_line(__file__)
    load_before = os.getloadavg()[0]
    print(f"command: {command}")
    print(f"machine: {describe_machine(info)}; faiss {faiss.__version__}")
    rng = np.random.default_rng(args.seed)
    basis = rng.standard_normal((LATENT, DIMENSION), dtype=np.float32)
    vectors = unit_vectors(count, "lowrank", rng, basis)
    queries = unit_vectors(args.queries, "lowrank", rng, basis)
    passages = [Passage(f"p{i}", f"passage {i}", doc_id=f"d{i % 1000}") for i in range(count)]

    rows = []
    exact = DenseIndex.build(vectors, passages, model="bench", fingerprint="bench", kind="exact")
    truth, exact_p50 = timed_search(exact, queries)
    rows.append(("faiss exact", 0.0, 1.0, exact_p50))
    started = time.perf_counter()
    hnsw = DenseIndex.build(vectors, passages, model="bench", fingerprint="bench",
                            config=IndexConfig(kind="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction,
                                               ef_search=args.ef_search))
    build = time.perf_counter() - started
    found, p50 = timed_search(hnsw, queries)
    rows.append((f"faiss hnsw (M {args.hnsw_m}, ef {args.ef_search})", build, recall(found, truth), p50))
    from uae.retrieval.vector_store import MilvusIndex, StoreConfig

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        store = MilvusIndex.build(vectors, passages, model="bench", fingerprint="bench", folder=folder,
                                  store=StoreConfig(uri=args.uri, collection="uae_bench", replace=True),
                                  config=IndexConfig(kind=args.milvus_kind, hnsw_m=args.hnsw_m,
                                                     ef_construction=args.ef_construction, ef_search=args.ef_search))
        store.save(folder)
        build = time.perf_counter() - started
        found, p50 = timed_search(store, queries)
        where = args.uri or "Milvus Lite, embedded"
        rows.append((f"milvus {args.milvus_kind} ({where})", build, recall(found, truth), p50))
        store.client.close()
    load_after = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    loaded = max(load_before, load_after) > cores
    flag = (f"FLAGGED: load average {load_before:.1f} before, {load_after:.1f} after, above the {cores} cores; "
            "the latencies are not a measurement of these engines" if loaded else
            f"load average {load_before:.1f} before, {load_after:.1f} after")
    table = "\n".join(["| index | build s | recall@10 vs exact | p50 ms (1 query) |", "|---|---|---|---|"]
                      + [f"| {name} | {b:.1f} | {r:.4f} | {p:.2f} |" for name, b, r, p in rows])
    print(table)
    print(flag)
    section = "\n".join([
        section_heading(f"Vector store beside FAISS, {count:,} passages", args.quick), "",
        f"Command: `{command}`", "", f"Machine: {describe_machine(info)}; faiss {faiss.__version__}.", "",
        f"Data: {count:,} synthetic {DIMENSION}-dim lowrank unit vectors (as bench/index.py), {args.queries} queries; "
        "not text embeddings. Recall@10 against exact FAISS; latency one query per call through the index class "
        f"the retriever uses; FAISS at {args.threads} thread(s).", "", table, "", flag + ".",
    ])
    if not args.no_write:
        print(f"appended to {append_benchmarks(section)}")
    figures = {name.split(" (")[0] + " recall@10": r for name, _, r, _ in rows[1:]}
    figures.update({name.split(" (")[0] + " p50 ms": p for name, _, _, p in rows})
    figures["load flagged"] = "yes" if loaded else "no"
    print(result_line(f"vector store{' (quick)' if args.quick else ''}", figures))


if __name__ == "__main__":
    main()
