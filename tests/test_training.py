"""Training rows and the trainer: same passages for every loss, padding, a loadable model with its record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uae.config import SelectionConfig, TargetConfig, TrainingConfig
from uae.data.schema import Corpus, Passage, Query
from uae.data.tables import Candidate
from uae.training.rows import build_training_rows, select_pool
from uae.training.trainer import train_model


@pytest.fixture
def small():
    corpus = Corpus([Passage(f"p{i}", f"text number {i} about topic {i % 3}") for i in range(20)])
    queries = [Query(f"q{i}", f"question {i}", (f"answer {i}",)) for i in range(4)]
    pools = {
        q.id: [Candidate(f"p{(3 * k + j) % 20}", 1.0 - j / 10, j == 2) for j in range(4)]
        for k, q in enumerate(queries)
    }
    utilities = {q.id: {c.passage_id: float(j) for j, c in enumerate(pools[q.id])} for q in queries}
    return corpus, queries, pools, utilities


def test_select_pool_keeps_gold_and_pool_order():
    candidates = [Candidate("a", 4, False), Candidate("b", 3, False), Candidate("c", 2, False), Candidate("g", 1, True)]
    assert [c.passage_id for c in select_pool(candidates, 2)] == ["a", "g"]


def test_label_free_selections_ignore_the_gold_flag():
    candidates = [Candidate("a", 4, False), Candidate("b", 3, False), Candidate("c", 2, False), Candidate("g", 1, True)]
    utilities = {"a": 0.1, "b": 0.2, "c": 1.5, "g": 0.9}
    assert [c.passage_id for c in select_pool(candidates, 2, "rank")] == ["a", "b"]
    assert [c.passage_id for c in select_pool(candidates, 2, "utility_first", utilities)] == ["a", "c"]
    with pytest.raises(ValueError, match="needs the query's utilities"):
        select_pool(candidates, 2, "utility_first")
    with pytest.raises(ValueError, match="got 'best'"):
        select_pool(candidates, 2, "best")


def test_gold_rows_keep_the_gold_whatever_the_selection(small):
    corpus, queries, pools, utilities = small
    rows = build_training_rows(queries, pools, corpus, "gold", utilities, TargetConfig(), pool_size=2, selection="rank")
    assert all(label == [0.0, 1.0] for label in rows.labels)
    uae_rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetConfig(), pool_size=2,
                                   selection="utility_first")
    assert all(label[-1] > label[0] for label in uae_rows.labels)  # utility 3.0 (last in pool order) is kept


def test_rows_for_each_label_kind(small):
    corpus, queries, pools, utilities = small
    targets = TargetConfig(tau_t=1.0, gold="none")
    dist = build_training_rows(queries, pools, corpus, "distribution", utilities, targets, pool_size=4)
    gold = build_training_rows(queries, pools, corpus, "gold", utilities, targets, pool_size=4)
    util = build_training_rows(queries, pools, corpus, "utility", utilities, targets, pool_size=4)
    assert dist.pools == gold.pools == util.pools
    expected = np.exp([0.0, 1.0, 2.0, 3.0]) / np.exp([0.0, 1.0, 2.0, 3.0]).sum()
    assert np.allclose(dist.labels[0], expected)
    assert gold.labels[0] == [0.0, 0.0, 1.0, 0.0]
    assert util.labels[0] == [0.0, 1.0, 2.0, 3.0]


def test_short_pools_are_padded_with_out_of_pool_true_negatives(small):
    corpus, queries, pools, utilities = small
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetConfig(), pool_size=6)
    for pool, label, query in zip(rows.pools, rows.labels, queries):
        assert len(pool) == 6 and len(label) == 6
        pooled = {corpus[c.passage_id].full_text for c in pools[query.id]}
        assert not set(pool[4:]) & pooled
        assert label[4:] == [0.0, 0.0]


def test_constant_utilities_are_skipped_and_counted(small):
    corpus, queries, pools, utilities = small
    utilities["q0"] = {pid: 0.5 for pid in utilities["q0"]}
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetConfig(), pool_size=4)
    assert len(rows.queries) == 3
    assert rows.skipped.counts == {"constant utilities": 1}


def test_trained_model_is_a_sentence_transformers_folder_with_its_record(small, tiny_encoder_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    corpus, queries, pools, utilities = small
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetConfig(tau_t=0.5), pool_size=4)
    config = TrainingConfig(steps=2, batch_size=2, max_seq_length=32, tau_s=0.07)
    out = train_model(rows, str(tiny_encoder_dir), tmp_path / "model", config, {"teacher": "dirichlet", "data": "tiny"})
    model = SentenceTransformer(str(out), local_files_only=True)
    assert model.encode(["hello"]).shape == (1, 32)
    record = json.loads((out / "uae_training.json").read_text())
    assert record["teacher"] == "dirichlet"
    assert record["loss"]["name"] == "um_infonce"
    assert record["loss"]["tau_s"] == 0.07
    assert record["loss"]["gather_across_devices"] is True
    assert record["distributed"] == {"world_size": 1, "in_batch_negatives_across_processes": False}
    assert "UAE training" in (out / "README.md").read_text()
    assert json.loads((out / "training_log.json").read_text())
    assert not (out / "checkpoints").exists()


def test_rows_keep_at_most_max_gold_gold_passages_and_fill_with_the_best_ranked_others():
    pool = [Candidate("g1", 5, True), Candidate("g2", 4, True), Candidate("a", 3, False), Candidate("g3", 2, True),
            Candidate("b", 1, False), Candidate("c", 0, False)]
    assert [c.passage_id for c in select_pool(pool, 4, max_gold=1)] == ["g1", "a", "b", "c"]
    assert [c.passage_id for c in select_pool(pool, 4, max_gold=2)] == ["g1", "g2", "a", "b"]
    most_useful = {"g1": 0.1, "g2": 0.2, "g3": 2.0, "a": 0.0, "b": 0.0, "c": 0.0}
    assert [c.passage_id for c in select_pool(pool, 3, utilities=most_useful, max_gold=1)] == ["a", "g3", "b"]
    assert [c.passage_id for c in select_pool(pool, 4)] == ["g1", "g2", "a", "g3"]  # no limit: the old rule


def test_a_pool_of_evidence_only_fills_utility_rows_with_more_gold_and_pads_gold_rows():
    """QMSum: every passage of a pool can be evidence; utility rows keep the most useful, gold rows stay 1 + padding."""
    corpus = Corpus([Passage(f"p{i}", f"text {i}") for i in range(12)])
    query = Query("q", "question", ("answer",))
    pools = {"q": [Candidate(f"p{i}", 6 - i, True) for i in range(6)]}
    utilities = {"q": {"p0": 0.1, "p1": 0.9, "p2": 0.2, "p3": 0.5, "p4": 0.05, "p5": 0.3}}
    kept = select_pool(pools["q"], 4, utilities=utilities["q"], max_gold=1, fill_with_gold=True)
    assert [c.passage_id for c in kept] == ["p1", "p2", "p3", "p5"]  # p1 most useful, then by utility: p3, p5, p2
    assert [c.passage_id for c in select_pool(pools["q"], 4, utilities=utilities["q"], max_gold=1)] == ["p1"]
    rows = build_training_rows([query], pools, corpus, "distribution", utilities, TargetConfig(confidence="none"),
                               pool_size=4, max_gold=1)
    assert not rows.skipped.counts and len(rows.pools[0]) == 4
    assert rows.pools[0] == [corpus[p].full_text for p in ("p1", "p2", "p3", "p5")]
    gold_rows = build_training_rows([query], pools, corpus, "gold", None, TargetConfig(), pool_size=4, max_gold=1)
    assert gold_rows.labels == [[1.0, 0.0, 0.0, 0.0]]  # one positive and three padding negatives from outside the pool


def test_gold_rows_mark_every_gold_passage_of_the_row():
    corpus = Corpus([Passage(f"p{i}", f"text {i}") for i in range(10)])
    query = Query("q", "question", ("answer",))
    pools = {"q": [Candidate("p0", 3, True), Candidate("p1", 2, True), Candidate("p2", 1, False), Candidate("p3", 0, False)]}
    rows = build_training_rows([query], pools, corpus, "gold", None, TargetConfig(), pool_size=4, max_gold=2)
    assert rows.labels == [[1.0, 1.0, 0.0, 0.0]]


def test_down_weighted_and_masked_rows_are_counted(small):
    corpus, queries, pools, utilities = small
    utilities["q1"] = {pid: u / 10 for pid, u in utilities["q1"].items()}  # best passage helps 0.3 nats < 1.0
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetConfig(tau_t=1.0, confident_utility=1.0),
                               pool_size=4)
    assert rows.adjusted["down-weighted"] == 1 and rows.confidence_threshold == 1.0
    # the gold passage (pool position 2) gets e^2 / sum e^u = 0.237 < 1/4 of the target in the other rows: masked
    assert rows.adjusted["gold masked"] == 3
    assert rows.labels[0][2] == -1.0
    assert sum(v for v in rows.labels[0] if v >= 0) == pytest.approx(1.0)
    # in q1's nearly flat target (utilities 0..0.3 at tau_t 1) it gets 0.261: kept; the row weighs 0.3 / 1.0
    assert rows.labels[1][2] > 0 and sum(rows.labels[1]) == pytest.approx(0.3)
    by_quantile = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetConfig(tau_t=1.0), pool_size=4)
    threshold = float(np.quantile([0.3, 3.0, 3.0, 3.0], 0.25))  # the rows' best utilities
    assert by_quantile.confidence_threshold == pytest.approx(threshold)
    assert sum(by_quantile.labels[1]) == pytest.approx(0.3 / threshold)


def dev_fixture(small):
    from uae.training.selection import DevSet

    corpus, queries, pools, utilities = small
    dev_queries = [Query("d0", "text number 5", ("answer",)), Query("d1", "text number 7", ("answer",))]
    candidates = {"d0": ["p5", "p6", "p9"], "d1": ["p7", "p1", "p2"]}
    texts = {pid: corpus[pid].full_text for pool in candidates.values() for pid in pool}
    qrels = {"d0": {"p5": 1}, "d1": {"p7": 1}}
    return DevSet(dev_queries, candidates, texts, {q.id: list(q.answers) for q in dev_queries}, qrels, None, 2)


def test_model_selection_ships_the_base_when_the_student_cannot_beat_it(small, tiny_encoder_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    corpus, queries, pools, utilities = small
    dev = dev_fixture(small)
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetConfig(), pool_size=4)
    config = TrainingConfig(steps=4, batch_size=2, max_seq_length=32, learning_rate=1e-3)
    selection = SelectionConfig(eval_every=2, metric="evidence")
    out = train_model(rows, str(tiny_encoder_dir), tmp_path / "model", config, {"teacher": "t"}, dev, selection)
    record = json.loads((out / "uae_training.json").read_text())["selection"]
    assert [h["step"] for h in record["history"]] == [2, 4]
    assert set(record["base"]) >= {"map", "recall@1", "hit_rate@1", "mrr", "answer_recall@1"}
    if record["beats_base"]:
        assert record["shipped"] == "student"
    else:
        assert record["shipped"] == "base"
        assert "does not beat the base encoder" in capsys.readouterr().err
        saved, base = load_file(out / "model.safetensors"), load_file(tiny_encoder_dir / "model.safetensors")
        assert all(torch_equal(saved[name], base[name]) for name in base)
    assert (out / "dev_curve.png").is_file()
    assert record["verdict"] in (out / "README.md").read_text()


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_a_perfect_base_is_never_replaced(small, tiny_encoder_dir, tmp_path, capsys):
    """On a dev set where the base already ranks every gold passage first, no student can beat it."""
    from uae.retrieval.encoders import load_encoder
    from uae.training.selection import score_dev

    corpus, queries, pools, utilities = small
    dev = dev_fixture(small)
    base_scores = score_dev(load_encoder(str(tiny_encoder_dir)), dev)
    perfect = dev if base_scores["map"] == 1.0 else None
    if perfect is None:  # make it perfect: each dev question's only candidate is its gold passage and one copy of it
        from uae.training.selection import DevSet

        perfect = DevSet(dev.queries, {"d0": ["p5"], "d1": ["p7"]}, {"p5": dev.texts["p5"], "p7": dev.texts["p7"]}, dev.answers,
                         dev.qrels, None, 2)
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetConfig(), pool_size=4)
    config = TrainingConfig(steps=2, batch_size=2, max_seq_length=32)
    out = train_model(rows, str(tiny_encoder_dir), tmp_path / "model", config, {}, perfect, SelectionConfig(eval_every=1))
    record = json.loads((out / "uae_training.json").read_text())["selection"]
    assert record["base"]["map"] == 1.0 and not record["beats_base"] and record["shipped"] == "base"
    assert "warning:" in capsys.readouterr().err


def test_a_diverging_run_stops_with_an_error_and_saves_nothing(small, tiny_encoder_dir, tmp_path):
    corpus, queries, pools, utilities = small
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetConfig(), pool_size=4)
    config = TrainingConfig(steps=3, batch_size=2, max_seq_length=32, learning_rate=float("inf"))
    with pytest.raises(ArithmeticError, match="finite"):
        train_model(rows, str(tiny_encoder_dir), tmp_path / "model", config, {})
    assert not (tmp_path / "model" / "uae_training.json").exists()
    assert not list((tmp_path / "model").glob("*.safetensors"))


def test_uae_train_without_the_train_extra_says_how_to_install(tmp_path, monkeypatch):
    import sys

    from typer.testing import CliRunner

    from uae.cli import app
    from uae.data.beir import write_dataset
    from uae.data.schema import Dataset
    from uae.data.tables import write_pools

    passages = [Passage(pid, f"{pid} passage text number {i}") for i, pid in enumerate("abcd")]
    dataset = Dataset("tiny", Corpus(passages), {"q": Query("q", "question about a?", ("answer",))}, {"train": {"q": {"a": 1}}})
    write_dataset(dataset, tmp_path / "data")
    write_pools({"q": [Candidate("a", 2.0, True), Candidate("b", 1.0, False)]}, tmp_path / "pools.parquet")
    monkeypatch.setitem(sys.modules, "datasets", None)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "data"), "--pools", str(tmp_path / "pools.parquet"),
                                      "--loss", "infonce_gold", "--out", str(tmp_path / "model"), "--steps", "1"])
    assert result.exit_code == 2, result.output
    assert "pip install 'uae[train]'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "model" / "uae_training.json").exists()


def test_the_resume_fingerprint_sees_the_rows_content_not_only_their_number():
    from uae.training.rows import TrainingRows
    from uae.training.trainer import rows_digest

    first = TrainingRows(["q"], [["a", "b"]], [[0.9, 0.1]], None)
    same = TrainingRows(["q"], [["a", "b"]], [[0.9, 0.1]], None)
    relabelled = TrainingRows(["q"], [["a", "b"]], [[0.1, 0.9]], None)
    assert rows_digest(first) == rows_digest(same) != rows_digest(relabelled)
