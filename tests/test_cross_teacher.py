"""Graded qrels from utilities, utility nDCG, Kendall tau, and `uae qrels --from-utilities`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uae.data.schema import Corpus, Passage, Query
from uae.data.tables import NO_PASSAGE, NLLRecord, nll_records_to_table, write_table
from uae.evaluation.cross_teacher import (
    PoolContribution,
    grade_query,
    graded_qrels,
    judge_pooled_runs,
    pool_contributions,
    pool_kendall_tau,
    pooled_judgements,
    student_scores,
    teacher_agreement,
    utility_ndcg,
)
from uae.teachers import DirichletTeacher


def test_quantile_grades_give_the_top_passage_the_highest_grade() -> None:
    grades = grade_query({"a": 0.3, "b": 0.1, "c": 0.2, "d": -1.0, "e": 0.0}, grades=3)
    assert grades == {"a": 3, "b": 1, "c": 2, "d": 0, "e": 0}


def test_quantile_grades_with_ties_and_fewer_positives_than_grades() -> None:
    # positives sorted (1, 2, 2, 3), n = 4: ceil(3 * r / 4) with r = 1, 3, 3, 4
    assert grade_query({"a": 3.0, "b": 1.0, "c": 2.0, "f": 2.0}, grades=3) == {"a": 3, "b": 1, "c": 3, "f": 3}
    assert grade_query({"a": 0.5, "b": 0.2, "z": -0.3}, grades=3) == {"a": 3, "b": 2, "z": 0}  # ceil(1.5), ceil(3)


def test_threshold_grades_use_fixed_cut_points_and_min_utility() -> None:
    utilities = {"a": 0.2, "b": 0.5, "c": 2.0, "d": -0.1, "e": 0.05}
    assert grade_query(utilities, 3, "threshold", [0.5, 1.5]) == {"a": 1, "b": 2, "c": 3, "d": 0, "e": 1}
    assert grade_query(utilities, 3, "threshold", [0.5, 1.5], min_utility=0.1) == {"a": 1, "b": 2, "c": 3, "d": 0, "e": 0}


@pytest.mark.parametrize("grades, scheme, thresholds, message", [
    (0, "quantile", None, "at least 1"),
    (3, "rank", None, "scheme"),
    (3, "threshold", [0.5], "2 increasing thresholds"),
    (3, "threshold", [1.0, 0.5], "increasing"),
    (3, "quantile", [0.5, 1.0], "belong to the 'threshold' scheme"),
])
def test_bad_grading_settings_are_refused(grades, scheme, thresholds, message) -> None:
    with pytest.raises(ValueError, match=message):
        graded_qrels({"q": {"a": 1.0}}, grades, scheme, thresholds)


def test_queries_without_a_helpful_passage_stay_with_zero_grades_and_are_counted() -> None:
    qrels, report = graded_qrels({"q1": {"a": 1.0, "b": -1.0}, "q2": {"a": -0.5, "b": 0.0}})
    assert qrels == {"q1": {"a": 3, "b": 0}, "q2": {"a": 0, "b": 0}}
    assert report.counts == {"no passage with positive utility (all grades 0)": 1}


def test_utility_ndcg_uses_positive_utilities_as_gains() -> None:
    utilities = {"q": {"a": 2.0, "b": 1.0, "c": -1.0}, "none": {"a": -1.0}}
    run = {"q": {"c": 3.0, "a": 2.0, "b": 1.0, "x": 0.5}}
    expected = (0 + 2 / math.log2(3) + 1 / math.log2(4)) / (2 + 1 / math.log2(3))
    scores = utility_ndcg(run, utilities, k=10)
    assert scores == {"q": pytest.approx(expected)}
    assert utility_ndcg({"q": {"x": 1.0, "b": 0.5}}, utilities, k=1) == {"q": 0.0}  # unjudged x has gain 0


def test_pool_kendall_tau_per_query() -> None:
    utilities = {"up": {"a": 1.0, "b": 2.0, "c": 3.0}, "down": {"a": 1.0, "b": 2.0, "c": 3.0},
                 "flat": {"a": 0.0, "b": 0.0}, "unscored": {"a": 1.0, "b": 0.0}}
    scores = {"up": {"a": 0.1, "b": 0.2, "c": 0.3, "z": 9.0}, "down": {"a": 0.3, "b": 0.2, "c": 0.1}, "flat": {"a": 1.0, "b": 2.0}}
    taus, report = pool_kendall_tau(scores, utilities)
    assert taus == {"up": pytest.approx(1.0), "down": pytest.approx(-1.0)}
    assert report.counts == {"tau undefined (pool < 2 or constant scores/utilities)": 1, "no student scores": 1}
    with pytest.raises(ValueError, match="no student score"):
        pool_kendall_tau({"up": {"a": 1.0}}, {"up": utilities["up"]})


def test_teacher_agreement_over_shared_pools() -> None:
    first = {"q": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.0}}
    second = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    taus, _ = teacher_agreement(first, second)
    assert taus == {"q": pytest.approx(-1.0)}


def test_student_scores_rank_the_corpus_and_score_the_pool_with_cosines(tiny_encoder_dir: Path) -> None:
    from uae.retrieval.encoders import encode, load_encoder

    corpus = Corpus([Passage("a", "the island of iota", doc_id="x"), Passage("b", "a mountain called kappa", doc_id="x"),
                     Passage("c", "a river named lambda", doc_id="y")])
    queries = [Query("q", "where is iota?"), Query("scoped", "where is iota?", doc_id="y")]
    run, pooled = student_scores(str(tiny_encoder_dir), queries, corpus, {"q": ["a", "b"]}, depth=2)
    model = load_encoder(str(tiny_encoder_dir))
    cosines = encode(model, corpus.texts, progress=False) @ encode(model, ["where is iota?"], progress=False)[0]
    assert [pooled["q"]["a"], pooled["q"]["b"]] == pytest.approx(cosines[:2].tolist(), abs=1e-5)
    best = np.argsort(-cosines)[:2]
    assert list(run["q"]) == [corpus.ids[i] for i in best]  # top-2, best first
    assert run["q"][corpus.ids[best[0]]] == pytest.approx(float(cosines[best[0]]), abs=1e-5)
    assert list(run["scoped"]) == ["c"] and "scoped" not in pooled  # its scope holds one passage; it has no pool


def _labels(folder: Path) -> Path:
    rows = [("q1", NO_PASSAGE, 2.0), ("q1", "d1", 1.0), ("q1", "d2", 1.5), ("q1", "d3", 2.5),
            ("q2", NO_PASSAGE, 2.0), ("q2", "d1", 2.0), ("q2", "d3", 3.0)]
    write_table(nll_records_to_table([NLLRecord(q, p, 0, nll, 2) for q, p, nll in rows]), folder / "nlls.parquet")
    (folder / "manifest.json").write_text(json.dumps({"teacher": {"teacher": "dirichlet:mu=2000"}}))
    return folder


def test_uae_qrels_from_utilities_writes_graded_beir_qrels(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from uae.cli import app
    from uae.data.beir import read_qrels

    labels = _labels(tmp_path / "labels")
    out = tmp_path / "qrels" / "teacher_b.tsv"
    result = CliRunner().invoke(app, ["qrels", "--from-utilities", str(labels), "--out", str(out), "--grades", "2"])
    assert result.exit_code == 0, result.output
    assert "dirichlet:mu=2000" in result.output and "no passage with positive utility" in result.output
    lines = out.read_text().splitlines()
    # q1 utilities: d1 1.0, d2 0.5, d3 -0.5 -> grades 2, 1, 0; q2: 0.0 and -1.0 -> 0, 0
    assert lines == ["query-id\tcorpus-id\tscore", "q1\td1\t2", "q1\td2\t1", "q1\td3\t0", "q2\td1\t0", "q2\td3\t0"]
    corpus = Corpus([Passage(f"d{i}", "text") for i in (1, 2, 3)])
    assert read_qrels(out, corpus, {q: Query(q, "?") for q in ("q1", "q2")})["q1"] == {"d1": 2, "d2": 1, "d3": 0}

    parquet = CliRunner().invoke(app, ["qrels", "--from-utilities", str(labels / "nlls.parquet"), "--out", str(tmp_path / "t.tsv"),
                                       "--scheme", "threshold", "--thresholds", "0.75", "--grades", "2"])
    assert parquet.exit_code == 0, parquet.output
    assert (tmp_path / "t.tsv").read_text().splitlines()[1:3] == ["q1\td1\t2", "q1\td2\t1"]
    bad = CliRunner().invoke(app, ["qrels", "--from-utilities", str(labels), "--out", str(tmp_path / "x.tsv"), "--scheme", "threshold"])
    assert bad.exit_code == 2 and "increasing thresholds" in bad.output


def test_graded_qrels_feed_ranx_ndcg(tmp_path: Path) -> None:
    from uae.evaluation import evaluate

    qrels, _ = graded_qrels({"q": {"a": 0.3, "b": 0.1, "c": 0.2}})
    ndcg = evaluate(qrels, {"s": {"q": {"b": 3.0, "c": 2.0, "a": 1.0}}}, ["ndcg@10", "mrr"])["s"]["ndcg@10"]
    dcg = 1 + 2 / np.log2(3) + 3 / np.log2(4)
    ideal = 3 + 2 / np.log2(3) + 1 / np.log2(4)
    assert ndcg == pytest.approx(dcg / ideal)


# ---- pooled judgements (TREC pooling) ----------------------------------------------------------


def _reference_top(ranked: dict[str, float], depth: int) -> list[str]:
    """trec_eval's order written out: score descending, ties to the larger passage id."""
    return [pid for pid, _ in sorted(ranked.items(), key=lambda item: (item[1], item[0]), reverse=True)][:depth]


_RUNS = st.dictionaries(
    st.sampled_from(["base", "bm25", "student", "gold"]),
    st.dictionaries(st.sampled_from(["q1", "q2", "q3"]),
                    st.dictionaries(st.sampled_from(list("abcdefgh")), st.integers(0, 3).map(float), max_size=8), max_size=3),
    min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(runs=_RUNS, depth=st.integers(1, 5))
def test_the_pool_is_exactly_the_union_of_every_systems_top_k(runs, depth) -> None:
    pools = pooled_judgements(runs, depth)
    expected: dict[str, dict[str, int]] = {}
    for run in runs.values():
        for qid, ranked in run.items():
            for pid in _reference_top(ranked, depth):
                expected.setdefault(qid, {})[pid] = expected.setdefault(qid, {}).get(pid, 0) + 1
    assert {qid: {c.passage_id: c.score for c in pool} for qid, pool in pools.items()} == expected
    assert all(len(pool) == len({c.passage_id for c in pool}) and not any(c.is_gold for c in pool) for pool in pools.values())


# base and bm25 tie nothing; the student ties a and d at 0.8, and the metrics rank d first (larger id)
HAND_RUNS = {
    "base": {"q1": {"a": 0.9, "b": 0.8, "c": 0.7}, "q2": {"x": 0.5, "y": 0.4}},
    "bm25": {"q1": {"b": 5.0, "d": 4.0, "a": 1.0}, "q2": {"y": 2.0, "z": 1.0}},
    "student": {"q1": {"e": 0.9, "a": 0.8, "d": 0.8}},
}


def test_pool_order_votes_and_contributions_of_a_hand_computed_example() -> None:
    # top-2: base q1 {a, b}, q2 {x, y}; bm25 q1 {b, d}, q2 {y, z}; student q1 {e, d}
    pools = pooled_judgements(HAND_RUNS, depth=2)
    assert [(c.passage_id, c.score) for c in pools["q1"]] == [("a", 1), ("b", 2), ("e", 1), ("d", 2)]  # best rank, then system
    assert [(c.passage_id, c.score) for c in pools["q2"]] == [("x", 1), ("y", 2), ("z", 1)]
    assert pool_contributions(HAND_RUNS, depth=2) == {
        "base": PoolContribution(contributed=4, unique=2),  # a and x only from base; b (bm25), y (bm25) shared
        "bm25": PoolContribution(contributed=4, unique=1),  # z; b (base) and d (student) shared
        "student": PoolContribution(contributed=2, unique=1),  # e
    }
    # the teacher judged only q1 (say q2 had no usable answer): counts cover what was judged
    assert pool_contributions(HAND_RUNS, 2, judged={"q1": {"a": 0.1, "b": 0.0, "d": -1.0, "e": 2.0}}) == {
        "base": PoolContribution(2, 1), "bm25": PoolContribution(2, 0), "student": PoolContribution(2, 1)}
    assert {c.passage_id for c in pooled_judgements(HAND_RUNS, depth=1)["q1"]} == {"a", "b", "e"}
    with pytest.raises(ValueError, match="pool depth"):
        pooled_judgements(HAND_RUNS, depth=0)


def test_a_system_that_finds_a_helpful_passage_outside_the_base_pool_gets_credit(tmp_path: Path) -> None:
    from uae.evaluation import evaluate

    distractors = {f"d{i}": f"the tower of the town is tall and old, part {i} of the story of the tower" for i in range(5)}
    corpus = Corpus([Passage("h", "the tower was built in 1889 by gustave eiffel"),
                     *(Passage(pid, text) for pid, text in distractors.items())])
    query = Query("q", "when was the tower built?", ("1889",))
    base = {"q": {"d0": 0.9, "d1": 0.8, "d2": 0.7, "h": 0.1}}  # the helpful passage is below the base's top-3
    student = {"q": {"h": 0.9, "d0": 0.8, "d3": 0.7, "d1": 0.1}}
    runs = {"base": base, "student": student}
    judgement = judge_pooled_runs(runs, [query], corpus, DirichletTeacher(), tmp_path / "judged", depth=3)

    assert [c.passage_id for c in judgement.pools["q"]] == ["d0", "h", "d1", "d2", "d3"]
    assert judgement.qrels["q"]["h"] == 3 and judgement.utilities["q"]["h"] > 0  # judged and the most helpful
    ndcg = evaluate(judgement.qrels, runs, ["ndcg@10"])
    assert ndcg["student"]["ndcg@10"] == pytest.approx(1.0) and ndcg["base"]["ndcg@10"] == pytest.approx(1 / np.log2(5))
    assert utility_ndcg(student, judgement.utilities)["q"] > utility_ndcg(base, judgement.utilities)["q"]
    assert judgement.contributions == {"base": PoolContribution(3, 2), "student": PoolContribution(3, 2)}  # d1, d2; h, d3
    assert judgement.summary()["judged"] == 5 and judgement.depth == 3

    # judged on the base's pool only (as the mined test pool was), the student's find is unjudged: the query
    # has no helpful passage at all and drops out of every measure, so the student gets no credit for h
    base_only = judge_pooled_runs({"base": base}, [query], corpus, DirichletTeacher(), tmp_path / "base_only", depth=3)
    assert "h" not in base_only.qrels["q"] and not any(base_only.qrels["q"].values())
    assert base_only.no_positive.total == 1 and utility_ndcg(student, base_only.utilities) == {}


def test_pooled_judging_counts_skipped_queries_and_refuses_bad_grading_before_labeling(tmp_path: Path) -> None:
    corpus = Corpus([Passage(pid, f"passage {pid} says value {pid}") for pid in "abcdexyz"])
    queries = [Query("q1", "what value?", ("a",)), Query("q2", "what value?", ("%",))]
    judgement = judge_pooled_runs(HAND_RUNS, queries, corpus, DirichletTeacher(), tmp_path / "j", depth=2)
    assert set(judgement.utilities) == {"q1"} and judgement.skipped.counts == {"no usable answer (none has a word token)": 1}
    assert judgement.contributions["bm25"] == PoolContribution(2, 0)  # q2 was not judged, so its passages do not count
    with pytest.raises(ValueError, match="increasing thresholds"):
        judge_pooled_runs(HAND_RUNS, queries, corpus, DirichletTeacher(), tmp_path / "never", scheme="threshold")
    assert not (tmp_path / "never").exists()
