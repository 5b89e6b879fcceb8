"""Training rows and the trainer: same passages for every loss, padding, a loadable model with its record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uae.config import TargetsConfig, TrainingConfig
from uae.data.schema import Corpus, Passage, Query
from uae.data.tables import Candidate
from uae.training import build_training_rows, select_pool, train_model


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
    rows = build_training_rows(queries, pools, corpus, "gold", utilities, TargetsConfig(), pool_size=2, selection="rank")
    assert all(label == [0.0, 1.0] for label in rows.labels)
    uae_rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetsConfig(), pool_size=2,
                                   selection="utility_first")
    assert all(label[-1] > label[0] for label in uae_rows.labels)  # utility 3.0 (last in pool order) is kept


def test_rows_for_each_label_kind(small):
    corpus, queries, pools, utilities = small
    targets = TargetsConfig(tau_t=1.0)
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
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetsConfig(), pool_size=6)
    for pool, label, query in zip(rows.pools, rows.labels, queries):
        assert len(pool) == 6 and len(label) == 6
        pooled = {corpus[c.passage_id].full_text for c in pools[query.id]}
        assert not set(pool[4:]) & pooled
        assert label[4:] == [0.0, 0.0]


def test_constant_utilities_are_skipped_and_counted(small):
    corpus, queries, pools, utilities = small
    utilities["q0"] = {pid: 0.5 for pid in utilities["q0"]}
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetsConfig(), pool_size=4)
    assert len(rows.queries) == 3
    assert rows.skipped.counts == {"constant utilities": 1}


def test_trained_model_is_a_sentence_transformers_folder_with_its_record(small, tiny_encoder_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    corpus, queries, pools, utilities = small
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, TargetsConfig(tau_t=0.5), pool_size=4)
    config = TrainingConfig(steps=2, batch_size=2, max_seq_length=32, tau_s=0.07)
    out = train_model(rows, str(tiny_encoder_dir), tmp_path / "model", config, {"teacher": "dirichlet", "data": "tiny"})
    model = SentenceTransformer(str(out), local_files_only=True)
    assert model.encode(["hello"]).shape == (1, 32)
    record = json.loads((out / "uae_training.json").read_text())
    assert record["teacher"] == "dirichlet"
    assert record["loss"]["name"] == "um_infonce"
    assert record["loss"]["tau_s"] == 0.07
    assert "UAE training" in (out / "README.md").read_text()
    assert json.loads((out / "training_log.json").read_text())
    assert not (out / "checkpoints").exists()
