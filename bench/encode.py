"""Corpus encoding on Ray: passages/s with 1 and 2 workers beside one process, and the same embeddings.

One corpus (synthetic sentences, ``--n`` of them), one encoder (``--model``, default the packaged
MiniLM), three ways: one process (``uae.retrieval.encoders.encode``), then
``uae.retrieval.ray_encoding.encode_corpus_ray`` on a fresh local Ray instance with 1 worker and
with 2 workers (one CPU each, torch at one thread per worker), each into a fresh folder. Reported:
passages/s of each (wall time of the call: for Ray it includes starting the actors and loading the
model in each, which a long job amortises), and the largest absolute difference between the Ray
embeddings and the single-process ones (equal up to float rounding: batches are padded differently).
The load average is recorded before and after; above the cores, the rates are flagged, not a headline.

    python bench/encode.py --n 20000          # a measurement
    python bench/encode.py --quick            # 400 passages: a smoke run of the same code
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_benchmarks, command_line, describe_machine, machine, result_line, section_heading  # noqa: E402

from uae.data.schema import Corpus, Passage  # noqa: E402

WORDS = ("river stone harbour tower bridge market castle forest valley mill founded town council record "
         "winter summer trade guild church road").split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="400 passages (a smoke run)")
    parser.add_argument("--n", type=int, help="passages (default 20,000; --quick 400)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--shard-size", type=int, help="passages per shard (default n/8)")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    return parser.parse_args()


def synthetic_corpus(count: int) -> Corpus:
    rng = np.random.default_rng(0)
    return Corpus(Passage(f"p{i}", " ".join(rng.choice(WORDS, size=int(rng.integers(20, 60)))), doc_id=f"d{i // 10}")
                  for i in range(count))


def main() -> None:
    import ray
    import torch

    from uae.retrieval.encoders import encode, load_encoder
    from uae.retrieval.ray_encoding import encode_corpus_ray

    args = parse_args()
    count = args.n or (400 if args.quick else 20_000)
    shard = args.shard_size or max(1, count // 8)
    info = machine()
    command = command_line(__file__)
    load_before = os.getloadavg()[0]
    print(f"command: {command}")
    print(f"machine: {describe_machine(info)}")
    corpus = synthetic_corpus(count)

    torch.set_num_threads(1)  # the same per-process budget as one Ray worker
    started = time.perf_counter()
    reference = encode(load_encoder(args.model), corpus.texts, progress=False)
    rows = [("one process (1 thread)", count / (time.perf_counter() - started), 0.0)]
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
            try:
                started = time.perf_counter()
                vectors = encode_corpus_ray(args.model, corpus, folder, shard_size=shard, workers=workers, progress=False)
                rate = count / (time.perf_counter() - started)
            finally:
                ray.shutdown()
        rows.append((f"Ray, {workers} worker(s)", rate, float(np.abs(vectors - reference).max())))
    load_after = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    loaded = max(load_before, load_after) > cores
    flag = (f"FLAGGED: load average {load_before:.1f} before, {load_after:.1f} after, above the {cores} cores; "
            "the rates are not a measurement" if loaded else f"load average {load_before:.1f} before, {load_after:.1f} after")
    table = "\n".join(["| encoder | passages/s | max abs diff vs one process |", "|---|---|---|"]
                      + [f"| {name} | {rate:,.1f} | {diff:.2e} |" for name, rate, diff in rows])
    print(table)
    print(flag)
    section = "\n".join([
        section_heading(f"Corpus encoding on Ray, {count:,} passages", args.quick), "",
        f"Command: `{command}`", "", f"Machine: {describe_machine(info)}.", "",
        f"Model {args.model}; synthetic passages of 20-60 words; shards of {shard}. Ray rates include actor start-up "
        "and model loading.", "", table, "", flag + ".",
    ])
    if not args.no_write:
        print(f"appended to {append_benchmarks(section)}")
    figures = {name: rate for name, rate, _ in rows}
    figures["max abs diff"] = max(diff for _, _, diff in rows)
    figures["load flagged"] = "yes" if loaded else "no"
    print(result_line(f"encoding on Ray{' (quick)' if args.quick else ''}", figures))


if __name__ == "__main__":
    main()
