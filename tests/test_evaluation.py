"""Evaluation: metrics against hand computation, significance, answer recall, reports."""

from __future__ import annotations

import logging
import math

import pytest
from rich.console import Console

from uae.evaluation import (
    Comparison,
    MetricResult,
    answer_recall_at_k,
    compare,
    evaluate,
    format_table,
    normalize_answer,
    per_query,
    plot_metric_bars,
    plot_training_loss,
    plot_utility_histogram,
    print_table,
    read_metrics_json,
    to_ranx_metric,
    write_metrics_json,
    write_report,
    write_trec_run,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# q1 has graded judgements (p2 judged irrelevant); q2 one relevant passage.
QRELS = {"q1": {"p1": 2, "p2": 0, "p3": 1, "p4": 3}, "q2": {"p5": 1}}
# q1 ranks: 1 p2 (grade 0), 2 p1 (2), 3 p9 (unjudged), 4 p4 (3), 5 p5 (unjudged here); p3 not retrieved.
# q2 ranks: 1 p5 (1), 2 p7 (unjudged).
RUN = {
    "q1": {"p2": 0.9, "p1": 0.8, "p9": 0.7, "p4": 0.6, "p5": 0.5},
    "q2": {"p5": 0.9, "p7": 0.1},
}


def _hand_values() -> dict[str, float]:
    """The example's metrics from their definitions (binary relevance = grade >= 1)."""
    recall = {
        "recall@1": (0 / 3 + 1 / 1) / 2,  # q1: rank 1 is judged irrelevant
        "recall@5": (2 / 3 + 1 / 1) / 2,  # q1: p1 and p4 of {p1, p3, p4}
        "recall@10": (2 / 3 + 1 / 1) / 2,
    }
    mrr = (1 / 2 + 1 / 1) / 2  # first relevant at rank 2 and rank 1
    ap_q1 = (1 / 2 + 2 / 4) / 3  # precision at the relevant ranks 2 and 4, over 3 relevant
    # nDCG@10, gain = grade, discount log2(rank + 1); ideal order of q1 is grades 3, 2, 1.
    dcg_q1 = 2 / math.log2(3) + 3 / math.log2(5)
    idcg_q1 = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    return {**recall, "mrr": mrr, "map": (ap_q1 + 1.0) / 2, "ndcg@10": (dcg_q1 / idcg_q1 + 1.0) / 2}


def test_metrics_match_hand_computation_with_graded_relevance():
    got = evaluate(QRELS, {"sys": RUN})["sys"]
    expected = _hand_values()
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name


def test_ndcg_uses_the_grade_as_gain():
    # Swapping the grades of the two retrieved relevant passages changes nDCG, not recall.
    swapped = {"q1": {"p1": 3, "p2": 0, "p3": 1, "p4": 2}}
    run = {"q1": RUN["q1"]}
    ndcg = per_query(swapped, run, "ndcg@10")["q1"]
    expected = (3 / math.log2(3) + 2 / math.log2(5)) / (3 + 2 / math.log2(3) + 1 / math.log2(4))
    assert ndcg == pytest.approx(expected, abs=1e-9)
    assert per_query(swapped, run, "recall@5")["q1"] == pytest.approx(2 / 3)


def test_query_missing_from_run_counts_as_zero():
    qrels = {**QRELS, "q3": {"p8": 1}}
    scores = per_query(qrels, RUN, "mrr")
    assert scores == pytest.approx({"q1": 0.5, "q2": 1.0, "q3": 0.0})
    assert evaluate(qrels, {"sys": RUN}, ["mrr"])["sys"]["mrr"] == pytest.approx(1.5 / 3)


def test_query_without_relevant_passage_is_left_out_and_logged(caplog):
    qrels = {**QRELS, "q4": {"p2": 0}}
    with caplog.at_level(logging.WARNING, logger="uae.evaluation.metrics"):
        scores = per_query(qrels, RUN, "mrr")
    assert set(scores) == {"q1", "q2"}
    assert "skipped 1 (no relevant passage in qrels), e.g. q4" in caplog.text


def test_unknown_metric_is_refused():
    assert to_ranx_metric("NDCG@10") == "ndcg@10"
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        to_ranx_metric("bleu")
    with pytest.raises(ValueError, match="positive integer"):
        to_ranx_metric("recall@0")


def _rank_runs(n: int = 30) -> tuple[dict, dict, dict, dict]:
    """30 queries with one relevant passage ``r``; the baseline ranks it 3rd everywhere,
    ``better`` ranks it 1st on 25 queries, ``empty`` retrieves nothing."""
    qrels = {f"q{i}": {"r": 1} for i in range(n)}
    third = {"a": 3.0, "b": 2.0, "r": 1.0}
    base = {q: dict(third) for q in qrels}
    first = {"r": 3.0, "a": 2.0, "b": 1.0}
    better = {q: dict(first if i < 25 else third) for i, q in enumerate(qrels)}
    return qrels, base, better, {}


@pytest.mark.parametrize("test", ["student", "fisher"])
def test_compare_finds_a_clearly_better_system(test):
    qrels, base, better, empty = _rank_runs()
    copy = {q: dict(d) for q, d in base.items()}
    runs = {"base": base, "better": better, "same": copy, "empty": empty}
    comparison = compare(qrels, runs, baseline="base", metrics=["mrr", "recall@1"], test=test)

    assert comparison.n_queries == 30
    base_mrr, better_mrr = 1 / 3, (25 * 1.0 + 5 / 3) / 30
    win = comparison.results["better"]["mrr"]
    assert win.mean == pytest.approx(better_mrr)
    assert win.gain_pct == pytest.approx((better_mrr - base_mrr) / base_mrr * 100)
    assert win.p_value < 0.05 and win.significant

    same = comparison.results["same"]["mrr"]
    assert (same.gain_pct, same.p_value, same.significant) == (0.0, 1.0, False)
    assert comparison.results["base"]["mrr"].p_value is None
    # The baseline never ranks r first: recall@1 is 0, so no relative gain exists.
    assert comparison.results["better"]["recall@1"].gain_pct is None
    assert comparison.results["empty"]["mrr"].mean == 0.0


def test_fisher_p_value_is_reproducible():
    qrels, base, better, _ = _rank_runs()
    runs = {"base": base, "better": better}
    first = compare(qrels, runs, "base", ["mrr"], test="fisher").results["better"]["mrr"].p_value
    second = compare(qrels, runs, "base", ["mrr"], test="fisher").results["better"]["mrr"].p_value
    assert first == second


def test_compare_refuses_unknown_baseline():
    with pytest.raises(ValueError, match="baseline 'nope'"):
        compare(QRELS, {"sys": RUN}, baseline="nope")


def test_answer_recall_normalises_and_matches_whole_tokens():
    passages = {
        "d1": "The Eiffel Tower stands in Paris, France.",
        "d2": "She was born in the U.S.A. in 1990.",
        "d3": "A party was held downtown.",
    }
    answers = {
        "paris": ["PARIS!"],  # case and punctuation
        "usa": ["USA"],  # "U.S.A." loses its dots
        "art": ["art"],  # inside "party": not a whole token
        "missing": ["Paris"],  # not in the run: a miss
        "article": ["The"],  # normalises to nothing: left out
    }
    run = {"paris": {"d3": 0.9, "d1": 0.5}, "usa": {"d2": 1.0}, "art": {"d3": 1.0}}
    assert normalize_answer("  The U.S.A.,  an  Answer ") == "usa answer"
    assert answer_recall_at_k(run, passages, answers, k=1) == pytest.approx(1 / 4)  # usa only
    assert answer_recall_at_k(run, passages, answers, k=2) == pytest.approx(2 / 4)  # + paris at rank 2


def test_answer_recall_names_a_passage_without_text():
    with pytest.raises(KeyError, match="'d9'"):
        answer_recall_at_k({"q": {"d9": 1.0}}, {}, {"q": ["x"]}, k=1)


def _hand_comparison() -> Comparison:
    results = {
        "bm25": {"mrr": MetricResult(0.4560, 0.0, None, False)},
        "uae": {"mrr": MetricResult(0.5123, 12.345, 0.001, True)},
        "zero": {"mrr": MetricResult(0.4, None, 0.5, False)},
    }
    return Comparison("bm25", "student", 0.05, 30, None, results)


def test_format_table_marks_gain_and_significance():
    metrics = {"bm25": {"mrr": 0.4560}, "uae": {"mrr": 0.5123}, "zero": {"mrr": 0.4}}
    table = format_table(metrics, _hand_comparison())
    lines = table.splitlines()
    assert lines[0] == "| System | mrr |"
    assert "| bm25 (baseline) | 0.4560 |" in lines
    assert "| uae | 0.5123 (+12.3%*) |" in lines
    assert "| zero | 0.4000 (n/a) |" in lines
    assert "* marks p < 0.05 (two-sided paired t-test" in table


def test_print_table_renders_with_rich():
    console = Console(record=True, width=200)
    print_table({"bm25": {"mrr": 0.456}, "uae": {"mrr": 0.5123}}, _hand_comparison(), console=console)
    text = console.export_text()
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in text.splitlines() if line.startswith("│")]
    # rich puts the gain under the value, to keep columns narrow.
    assert rows == [["bm25", "0.4560"], ["(baseline)", ""], ["uae", "0.5123"], ["", "(+12.3%*)"]]
    assert "* marks p < 0.05" in text


def test_report_has_table_legend_and_plots(tmp_path):
    metrics = {"bm25": {"mrr": 0.4560, "map": 0.3}, "uae": {"mrr": 0.5123, "map": 0.35}}
    plots = {
        "Utilities": plot_utility_histogram([-1.0, 0.2, float("nan")], tmp_path / "utility.png", "Utility"),
        "Loss": plot_training_loss(
            {
                "uae": [{"loss": 2.0, "step": 10}, {"loss": 1.5, "step": 20}, {"eval_loss": 1.7, "step": 20}],
                "infonce": [{"loss": 2.2, "step": 10}, {"train_loss": 2.0, "step": 20}],
            },
            tmp_path / "loss.png",
        ),
        "Metrics": plot_metric_bars(metrics, tmp_path / "metrics.png"),
    }
    report = write_report(
        tmp_path,
        "UAE on toy",
        ["- teacher: dirichlet", "- model: tiny"],
        metrics,
        _hand_comparison(),
        plots,
        extra_sections={"Skipped": "skipped 2 (no gold answer)"},
    )
    text = report.read_text()
    assert report == tmp_path / "report.md"
    assert text.startswith("# UAE on toy\n\n- teacher: dirichlet\n- model: tiny\n")
    assert "| uae | 0.5123 (+12.3%*) | 0.3500 |" in text
    assert "* marks p < 0.05" in text
    for name in ("utility.png", "loss.png", "metrics.png"):
        assert f"]({name})" in text
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
        assert (tmp_path / name).stat().st_size > 1000
    assert text.rstrip().endswith("## Skipped\n\nskipped 2 (no gold answer)")


def test_report_refuses_a_missing_plot(tmp_path):
    with pytest.raises(FileNotFoundError, match="'Loss'"):
        write_report(tmp_path, "t", [], {"a": {"mrr": 1.0}}, None, {"Loss": tmp_path / "none.png"})


def test_training_loss_plot_without_logged_loss_still_writes(tmp_path):
    path = plot_training_loss([{"train_runtime": 1.0, "step": 5}], tmp_path / "loss.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_metrics_json_round_trips(tmp_path):
    metrics = {"bm25": {"recall@1": 0.25, "ndcg@10": 1 / 3}, "uae": {"recall@1": 0.5, "ndcg@10": 0.6}}
    path = write_metrics_json(tmp_path / "out" / "metrics.json", metrics)
    assert read_metrics_json(path) == metrics
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_trec_run_export(tmp_path):
    path = write_trec_run({"q1": {"b": 0.5, "a": 2.0, "c": 0.5}}, tmp_path / "run.trec", tag="uae")
    assert path.read_text().splitlines() == [
        "q1 Q0 a 1 2.0 uae",
        "q1 Q0 c 2 0.5 uae",  # ties: larger id first, as trec_eval
        "q1 Q0 b 3 0.5 uae",
    ]
    with pytest.raises(ValueError, match="passage id"):
        write_trec_run({"q1": {"a b": 1.0}}, tmp_path / "bad.trec", tag="uae")
