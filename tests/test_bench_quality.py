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


def _bench(script: Path = BENCH):
    """Import a bench script as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
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
    assert set(saved) == {"bm25", "base", "uae", "infonce_gold", "base+bm25", "uae+bm25", "infonce_gold+bm25", "teacher_oracle"}
    for row in saved.values():
        assert {"recall@1", "recall@5", "mrr", "map", "ndcg@10", "answer_recall@1", "answer_recall@5"} <= set(row)
        assert row["answer_recall@1"] <= row["answer_recall@5"]
    comparison = bench.read_comparison(out / "comparison.json")
    assert comparison.baseline == "base" and comparison.results["uae"]["answer_recall@5"].p_value is not None
    report = (out / "report.md").read_text()
    assert "answer_recall@1" in report and "dirichlet" in report
    record = json.loads((out / "bench.json").read_text())
    assert record["timings"].keys() >= {"mine", "label", "train uae", "eval"}
    diagnostics = record["targets_vs_evidence"]
    assert diagnostics["rows"] > 0 and 0 <= diagnostics["top_is_gold"] <= 1
    assert 1 / 3 <= diagnostics["mean_top_target"] <= 1  # the top of a 3-passage target holds at least a third


def test_dev_sweep_runs_variants_on_dev_shares_stages_and_resumes(tmp_path, tiny_encoder_dir, monkeypatch):
    sweep = _bench(BENCH.with_name("dev_sweep.py"))
    data = _scoped_beir_folder(tmp_path / "data")
    out = tmp_path / "sweep"
    variants = ["defaults", "gold none"]
    argv = ["--dataset", "beir", "--data-dir", str(data), "--base-model", str(tiny_encoder_dir), "--train-limit", "30",
            "--eval-limit", "20", "--pool-size", "4", "--train-pool-size", "3", "--steps", "2", "--batch-size", "4",
            "--max-seq-length", "32", "--out", str(out), "--no-write", "--only", *variants]

    done = sweep.main(argv)

    assert list(done) == variants
    for record in done.values():
        assert record["argv"][record["argv"].index("--eval-split") + 1] == "dev"
    assert done[variants[1]]["argv"][-8:-6] == ["--gold", "none"]
    # infonce_gold does not depend on the targets or the selection: trained once, reused, same numbers
    assert done[variants[0]]["systems"]["infonce_gold"] == done[variants[1]]["systems"]["infonce_gold"]
    assert json.loads((out / "sweep.json").read_text()) == done

    monkeypatch.setattr(sweep.quality, "main", lambda argv: (_ for _ in ()).throw(AssertionError("rerun")))
    assert sweep.main(argv) == done  # resumed: nothing is run again


def test_dev_sweep_multiplies_steps_and_refuses_the_test_split():
    sweep = _bench(BENCH.with_name("dev_sweep.py"))
    shared = ["--dataset", "beir", "--data-dir", "x", "--steps", "10"]
    argv = sweep.variant_argv(shared, sweep.VARIANTS["2x the steps"], Path("out"))
    assert argv[argv.index("--steps", len(shared)) + 1] == "20"
    try:
        sweep.parse_args([*shared, "--eval-split", "test"])
    except SystemExit:
        pass
    else:
        raise AssertionError("--eval-split must be refused")
