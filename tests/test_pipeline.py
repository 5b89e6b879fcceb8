"""The whole pipeline on a small synthetic set with a tiny encoder: every stage, every file, resumable."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from uae.cli import app
from uae.config import MiningConfig, RunConfig, TrainingConfig
from uae.data.beir import write_dataset
from uae.data.synthetic import make_quickstart_dataset
from uae.pipeline import run_pipeline


def test_run_pipeline_writes_metrics_report_models_and_index(tmp_path, tiny_encoder_dir):
    data = write_dataset(make_quickstart_dataset(n_entities=30), tmp_path / "data")
    config = RunConfig(
        data=str(data),
        out=str(tmp_path / "run"),
        base_model=str(tiny_encoder_dir),
        mining=MiningConfig(pool_size=6, depth=20),
        training=TrainingConfig(steps=2, batch_size=4, train_pool_size=4, max_seq_length=32),
    )
    result = run_pipeline(config, progress=False)

    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"bm25", "base", "uae", "infonce_gold", "teacher_oracle"}
    for system in metrics.values():
        assert set(system) >= {"recall@1", "recall@5", "mrr", "map", "ndcg@10"}
        assert all(0.0 <= value <= 1.0 for value in system.values())
    assert result.metrics == metrics
    report = (out / "report.md").read_text()
    assert "dirichlet" in report and "| uae" in report
    assert (out / "utility_hist.png").stat().st_size > 0
    assert json.loads((out / "models" / "uae" / "uae_training.json").read_text())["loss"]["name"] == "um_infonce"

    runner = CliRunner()
    searched = runner.invoke(app, ["search", str(out / "index"), "Who founded the town?", "-k", "3", "--json"])
    assert searched.exit_code == 0, searched.output
    assert len(json.loads(searched.stdout)[0]["hits"]) == 3

    # A second run with the same settings reuses every finished stage.
    again = run_pipeline(config, progress=False)
    assert again.metrics == metrics


def test_cli_reports_bad_input_in_one_line(tmp_path):
    (tmp_path / "data" / "qrels").mkdir(parents=True)
    (tmp_path / "data" / "corpus.jsonl").write_text('{"_id": "p1", "text": "x"}\n{"_id": "p2"}\n')
    result = CliRunner().invoke(app, ["mine", str(tmp_path / "data"), "--out", str(tmp_path / "pools.parquet")])
    assert result.exit_code == 2
    assert "corpus.jsonl:2" in result.output and "expected field 'text'" in result.output


def test_every_command_has_help():
    runner = CliRunner()
    for command in ["quickstart", "run", "mine", "label", "train", "index", "search", "eval"]:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, command
        assert "Usage" in result.output


def test_without_evidence_training_never_reads_the_relevance_judgements(tmp_path, tiny_encoder_dir, monkeypatch):
    """evidence: false mines pools without gold, selects on the teacher's utility and leaves the qrels to evaluation."""
    from uae.data.schema import Dataset
    from uae.data.tables import read_pools

    data = write_dataset(make_quickstart_dataset(n_entities=30), tmp_path / "data")
    config = RunConfig(data=str(data), out=str(tmp_path / "run"), base_model=str(tiny_encoder_dir), evidence=False,
                       mining=MiningConfig(pool_size=6, depth=20),
                       training=TrainingConfig(steps=2, batch_size=4, train_pool_size=4, max_seq_length=32))
    read_for_training = []
    original = Dataset.without_evidence

    def spy(self):
        view = original(self)
        read_for_training.append(view)
        return view

    monkeypatch.setattr(Dataset, "without_evidence", spy)
    result = run_pipeline(config, progress=False)

    assert read_for_training and all(not any(judged for judged in split.values()) for view in read_for_training
                                     for split in view.qrels.values())
    pools = read_pools(tmp_path / "run" / "pools.parquet")
    assert not any(c.is_gold for pool in pools.values() for c in pool)
    record = json.loads((tmp_path / "run" / "models" / "uae" / "uae_training.json").read_text())
    assert record["evidence"] is False and record["training"]["pool_selection"] == "utility_first"
    assert record["selection"]["metric"] == "utility" and "map" not in record["selection"]["base"]
    assert "infonce_gold" not in result.metrics and "uae" in result.metrics  # evaluation does read the qrels


def test_dev_split_holds_out_whole_documents():
    from uae.data.schema import Query
    from uae.training.selection import split_dev

    queries = [Query(f"q{i}", "?", ("a",), doc_id=f"d{i // 4}") for i in range(80)]  # 20 documents of 4 questions
    documents = {q.id: q.doc_id for q in queries}
    split = split_dev(queries, documents, fraction=0.1, min_questions=12, seed=1)
    assert len(split.dev) == 12 and split.documents == 3  # max(8, 12) questions, whole documents
    assert not {documents[q.id] for q in split.dev} & {documents[q.id] for q in split.train}
    assert len(split.train) + len(split.dev) == 80
    capped = split_dev(queries, documents, fraction=0.1, min_questions=50, seed=1)
    assert len(capped.dev) == 20  # never more than a quarter of the questions
    assert split_dev(queries, documents, fraction=0.0, min_questions=50).reason.startswith("model selection is off")
    one_document = split_dev(queries[:4], documents, fraction=0.1, min_questions=1)
    assert not one_document.dev and "fewer than 2 documents" in one_document.reason
