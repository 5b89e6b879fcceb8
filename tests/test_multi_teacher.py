"""Targets from several teachers: hand-computed mixtures, validation, and the `uae train --labels A --labels B` path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from uae.config import TargetConfig
from uae.data.schema import Corpus, Passage, Query
from uae.data.tables import NO_PASSAGE, Candidate, NLLRecord, nll_records_to_table, write_table
from uae.targets import combine_teacher_utilities, targets_as_utilities, teacher_weights
from uae.targets.mixing import load_teacher_utilities, mixed_training_utilities
from uae.training.rows import build_training_rows

LN3, LN2, LN5 = math.log(3), math.log(2), math.log(5)
A = {"q": {"a": 0.0, "b": LN3}}  # p_A = (1/4, 3/4) at tau 1
B = {"q": {"a": LN3, "b": 0.0}}  # p_B = (3/4, 1/4)


def test_mean_distribution_weights_the_teachers_distributions() -> None:
    targets, skipped = combine_teacher_utilities({"A": A, "B": B}, [0.75, 0.25], "mean_distribution", TargetConfig(tau_t=1.0))
    # a: 0.75 * 1/4 + 0.25 * 3/4 = 0.375; b: 0.75 * 3/4 + 0.25 * 1/4 = 0.625
    assert targets["q"] == pytest.approx({"a": 0.375, "b": 0.625}, abs=1e-12)
    assert skipped.total == 0


def test_weights_are_normalised_and_may_be_a_mapping() -> None:
    by_list, _ = combine_teacher_utilities({"A": A, "B": B}, [3, 1], "mean_distribution", TargetConfig(tau_t=1.0))
    by_name, _ = combine_teacher_utilities({"A": A, "B": B}, {"B": 1.0, "A": 3.0}, "mean_distribution", TargetConfig(tau_t=1.0))
    assert by_list["q"] == pytest.approx({"a": 0.375, "b": 0.625}, abs=1e-12)
    assert by_name["q"] == pytest.approx(by_list["q"], abs=1e-15)


def test_opposite_teachers_with_equal_weights_cancel_and_the_query_is_counted() -> None:
    targets, skipped = combine_teacher_utilities({"A": A, "B": B}, None, "mean_distribution", TargetConfig(tau_t=1.0))
    assert targets == {}
    assert skipped.counts == {"constant combined utilities": 1}


def test_a_constant_teacher_contributes_a_uniform_distribution() -> None:
    flat = {"q": {"a": 1.0, "b": 1.0}}
    targets, _ = combine_teacher_utilities({"A": A, "flat": flat}, [0.5, 0.5], "mean_distribution", TargetConfig(tau_t=1.0))
    # 0.5 * (1/4, 3/4) + 0.5 * (1/2, 1/2) = (3/8, 5/8)
    assert targets["q"] == pytest.approx({"a": 3 / 8, "b": 5 / 8}, abs=1e-12)


def test_mean_zscore_averages_standardised_utilities_before_the_softmax() -> None:
    first = {"q": {"a": 0.0, "b": 1.0, "c": 2.0}}  # z = (-sqrt(3/2), 0, sqrt(3/2))
    second = {"q": {"a": 0.0, "b": 0.0, "c": 6.0}}  # mean 2, std sqrt(8): z = (-1/sqrt(2), -1/sqrt(2), sqrt(2))
    targets, _ = combine_teacher_utilities({"1": first, "2": second}, None, "mean_zscore", TargetConfig(tau_t=0.5))
    z = np.array([-(math.sqrt(1.5) + math.sqrt(0.5)) / 2, -math.sqrt(0.5) / 2, (math.sqrt(1.5) + math.sqrt(2)) / 2])
    expected = np.exp(z / 0.5) / np.exp(z / 0.5).sum()
    assert [targets["q"][p] for p in "abc"] == pytest.approx(expected.tolist(), abs=1e-12)


def test_mean_zscore_of_reversed_teachers_is_constant_and_skipped() -> None:
    up = {"q": {"a": 0.0, "b": 1.0, "c": 2.0}}
    down = {"q": {"a": 4.0, "b": 2.0, "c": 0.0}}  # same z-scores, reversed
    targets, skipped = combine_teacher_utilities({"up": up, "down": down}, None, "mean_zscore", TargetConfig(tau_t=1.0))
    assert targets == {} and skipped.counts == {"constant combined utilities": 1}


def test_top_m_truncates_the_combined_target() -> None:
    first = {"q": {"a": 0.0, "b": LN2, "c": LN5}}  # (1/8, 2/8, 5/8)
    second = {"q": {"a": LN5, "b": LN2, "c": 0.0}}  # (5/8, 2/8, 1/8)
    targets, _ = combine_teacher_utilities({"1": first, "2": second}, [0.6, 0.4], "mean_distribution", TargetConfig(tau_t=1.0, top_m=2))
    # combined (0.325, 0.25, 0.425); keep c and a, renormalised over 0.75
    assert targets["q"] == pytest.approx({"a": 0.325 / 0.75, "b": 0.0, "c": 0.425 / 0.75}, abs=1e-12)


def test_queries_missing_from_a_teacher_are_counted_and_different_pools_refused() -> None:
    extra = {"q": {"a": 0.0, "b": LN3}, "only_a": {"a": 0.0, "b": 1.0}}
    targets, skipped = combine_teacher_utilities({"A": extra, "B": B}, [3, 1], "mean_distribution", TargetConfig(tau_t=1.0))
    assert list(targets) == ["q"] and skipped.counts == {"not labeled by every teacher": 1}
    with pytest.raises(ValueError, match="scored different passages"):
        combine_teacher_utilities({"A": A, "B": {"q": {"a": 0.0, "c": 1.0}}}, None, "mean_distribution", TargetConfig(tau_t=1.0))


@pytest.mark.parametrize("weights, message", [([1.0], "1 teacher weight"), ([1.0, -1.0], "non-negative"),
                                              ([0.0, 0.0], "not all 0"), ({"A": 1.0}, "name")])
def test_bad_weights_are_refused(weights, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        teacher_weights(["A", "B"], weights)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mean_distribution"):
        combine_teacher_utilities({"A": A}, None, "median", TargetConfig(tau_t=1.0))  # type: ignore[arg-type]


def test_log_targets_rebuild_the_combined_distribution_in_training_rows() -> None:
    corpus = Corpus([Passage("a", "alpha text"), Passage("b", "beta text"), Passage("c", "gamma text")])
    queries = [Query("q", "question?", ("answer",))]
    pools = {"q": [Candidate("a", 2.0, True), Candidate("b", 1.0, False)]}
    utilities, rows_config, skipped = mixed_training_utilities({"A": A, "B": B}, [0.75, 0.25], "mean_distribution",
                                                               TargetConfig(tau_t=1.0, gold="none"))
    assert rows_config.tau_t == 1.0 and rows_config.normalize == "none" and skipped.total == 0
    rows = build_training_rows(queries, pools, corpus, "distribution", utilities, rows_config, pool_size=2)
    assert rows.labels[0] == pytest.approx([0.375, 0.625], abs=1e-12)
    assert targets_as_utilities({"q": {"a": 0.0}})["q"]["a"] == pytest.approx(math.log(np.finfo(float).tiny))


def _write_labels(folder: Path, teacher: str, nll_a: float, nll_b: float) -> Path:
    records = [NLLRecord("q", NO_PASSAGE, 0, 2.0, 1), NLLRecord("q", "a", 0, nll_a, 1), NLLRecord("q", "b", 0, nll_b, 1)]
    write_table(nll_records_to_table(records), folder / "nlls.parquet")
    (folder / "manifest.json").write_text(json.dumps({"teacher": {"teacher": teacher}}))
    return folder


def test_teacher_names_come_from_the_manifests_and_repeats_are_numbered(tmp_path: Path) -> None:
    first = _write_labels(tmp_path / "one", "dirichlet:mu=100", 2.0, 2.0 - LN3)
    second = _write_labels(tmp_path / "two", "dirichlet:mu=100", 2.0 - LN3, 2.0)
    per_teacher, _ = load_teacher_utilities([first, second / "nlls.parquet"])
    assert list(per_teacher) == ["dirichlet:mu=100", "dirichlet:mu=100#2"]
    assert per_teacher["dirichlet:mu=100"]["q"] == pytest.approx({"a": 0.0, "b": LN3})


def test_uae_train_with_two_label_folders_records_the_mixture(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    from typer.testing import CliRunner

    from uae.cli import app
    from uae.data.beir import write_dataset
    from uae.data.schema import Dataset
    from uae.data.tables import write_pools

    passages = [Passage(pid, f"{pid} passage text number {i}") for i, pid in enumerate(["a", "b", "c", "d"])]
    dataset = Dataset("tiny", Corpus(passages), {"q": Query("q", "question about a?", ("answer",))}, {"train": {"q": {"a": 1}}})
    write_dataset(dataset, tmp_path / "data")
    write_pools({"q": [Candidate("a", 2.0, True), Candidate("b", 1.0, False)]}, tmp_path / "pools.parquet")
    first = _write_labels(tmp_path / "A", "teacher-a", 2.0, 2.0 - LN3)
    second = _write_labels(tmp_path / "B", "teacher-b", 2.0 - LN3, 2.0)
    args = ["train", str(tmp_path / "data"), "--pools", str(tmp_path / "pools.parquet"), "--labels", str(first),
            "--labels", str(second), "--teacher-weights", "0.75,0.25", "--out", str(tmp_path / "model"),
            "--base-model", str(tiny_encoder_dir), "--steps", "1", "--batch-size", "1", "--max-seq-length", "16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "model" / "uae_training.json").read_text())
    assert record["teacher"]["teachers"] == ["teacher-a", "teacher-b"]
    assert record["teacher"]["weights"] == [0.75, 0.25] and record["teacher"]["mode"] == "mean_distribution"
    bad = CliRunner().invoke(app, args[:8] + ["--teacher-weights", "1,2,3", "--out", str(tmp_path / "m2")])
    assert bad.exit_code == 2 and "3 teacher weight(s) for 2 teachers" in bad.output
