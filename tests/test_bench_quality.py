"""bench/quality.py end to end on a tiny scoped BEIR folder with one qrels file and the tiny encoder."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

from uae.data.beir import write_dataset
from uae.data.schema import Corpus
from uae.data.splits import merged_qrels
from uae.data.synthetic import make_quickstart_dataset

BENCH = Path(__file__).resolve().parents[1] / "bench" / "quality.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scoped_beir_folder(folder: Path) -> Path:
    """The synthetic set with each entity as a document (scope), all judgements in one qrels file."""
    dataset = make_quickstart_dataset(n_entities=40)
    corpus = Corpus(dataclasses.replace(p, doc_id=p.title) for p in dataset.corpus)
    gold_doc = {qid: corpus[next(iter(judged))].doc_id for qid, judged in merged_qrels(dataset).items()}
    queries = {qid: dataclasses.replace(q, doc_id=gold_doc[qid]) for qid, q in dataset.queries.items()}
    return write_dataset(dataclasses.replace(dataset, corpus=corpus, queries=queries, qrels={"all": merged_qrels(dataset)}), folder)


def test_quality_bench_splits_by_document_and_evaluates_every_system(tmp_path, tiny_encoder_dir):
    bench = _bench()
    data = _scoped_beir_folder(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["--dataset", "beir", "--data-dir", str(data), "--base-model", str(tiny_encoder_dir), "--out", str(out),
            "--train-limit", "30", "--eval-limit", "20", "--pool-size", "4", "--train-pool-size", "3", "--steps", "2",
            "--batch-size", "4", "--max-seq-length", "32", "--no-write", "--no-progress"]

    args = bench.parse_args(argv)
    dataset, info = bench.prepare_data(args)
    assert info["train_questions"] == 30 and info["eval_questions"] == 20
    assert not bench.split_documents(dataset, "train") & bench.split_documents(dataset, "test")
    assert info["corpus_trimmed_to_kept_documents"]  # every question is scoped
    kept = set().union(*(bench.split_documents(dataset, split) for split in ("train", "dev", "test")))
    assert {p.doc_id for p in dataset.corpus} == kept

    metrics = bench.main(argv)

    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert set(saved) == {"bm25", "base", "uae", "infonce_gold", "teacher_oracle"}
    for row in saved.values():
        assert {"recall@1", "recall@5", "mrr", "map", "ndcg@10", "answer_recall@1", "answer_recall@5"} <= set(row)
        assert row["answer_recall@1"] <= row["answer_recall@5"]
    comparison = bench.read_comparison(out / "comparison.json")
    assert comparison.baseline == "base" and comparison.results["uae"]["answer_recall@5"].p_value is not None
    report = (out / "report.md").read_text()
    assert "answer_recall@1" in report and "dirichlet" in report
    assert json.loads((out / "bench.json").read_text())["timings"].keys() >= {"mine", "label", "train uae", "eval"}
