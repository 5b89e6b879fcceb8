"""Evaluation: metrics against hand computation, significance, answer recall, reports."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from rich.console import Console
from scipy import stats

from uae.evaluation import (
    Comparison,
    MetricResult,
    answer_recall_at_k,
    compare,
    evaluate,
    format_differences,
    format_table,
    mean_interval,
    metric_figure,
    metric_result,
    normalize_answer,
    per_query,
    plot_metric_bars,
    plot_training_loss,
    plot_utility_histogram,
    print_table,
    read_metrics_json,
    to_ranx_metric,
    training_summary,
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
        "hit_rate@1": (0 + 1) / 2,
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


def test_hit_rate_at_1_is_not_capped_by_the_number_of_relevant_passages():
    # q1 has 3 relevant passages and ranks one of them first: R@1 is 1/3, hit@1 is 1.
    run = {"q1": {"p4": 0.9, "p2": 0.8}, "q2": {"p7": 0.9, "p5": 0.1}}
    got = evaluate(QRELS, {"sys": run}, ["recall@1", "hit_rate@1"])["sys"]
    assert got == pytest.approx({"recall@1": (1 / 3 + 0) / 2, "hit_rate@1": (1 + 0) / 2})


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


# ---------------------------------------------------------------- confidence intervals


def _runs_from_ranks(base_ranks: list[int], system_ranks: list[int]) -> tuple[dict, dict]:
    """Queries with one relevant passage ``r``, ranked at the given ranks: MRR of query i is 1/rank."""
    qrels = {f"q{i:02d}": {"r": 1} for i in range(len(base_ranks))}

    def run(ranks: list[int]) -> dict:
        return {q: {"r": 100.0 - rank, **{f"x{j}": 100.0 - j - (j >= rank) for j in range(1, 10)}} for q, rank in zip(qrels, ranks)}

    return qrels, {"base": run(base_ranks), "sys": run(system_ranks)}


BASE_RANKS = [1, 3, 2, 5, 1, 4, 2, 2, 6, 1, 3, 2]
SYSTEM_RANKS = [1, 1, 2, 2, 1, 3, 1, 4, 2, 1, 1, 2]


def test_t_intervals_match_scipy_on_the_per_query_scores():
    qrels, runs = _runs_from_ranks(BASE_RANKS, SYSTEM_RANKS)
    result = compare(qrels, runs, "base", ["mrr"]).results
    system, base = np.array([1 / r for r in SYSTEM_RANKS]), np.array([1 / r for r in BASE_RANKS])
    assert per_query(qrels, runs["sys"], "mrr") == pytest.approx(dict(zip(sorted(qrels), system)))

    def t_interval(values: np.ndarray) -> tuple[float, float]:
        return stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))

    diff = system - base
    win = result["sys"]["mrr"]
    assert win.diff == pytest.approx(diff.mean(), abs=1e-12)
    assert (win.diff_ci_low, win.diff_ci_high) == pytest.approx(t_interval(diff), abs=1e-12)
    assert (win.ci_low, win.ci_high) == pytest.approx(t_interval(system), abs=1e-12)
    baseline = result["base"]["mrr"]
    assert (baseline.ci_low, baseline.ci_high) == pytest.approx(t_interval(base), abs=1e-12)
    assert (baseline.diff, baseline.diff_ci_low, baseline.diff_ci_high) == (None, None, None)


def test_t_interval_excludes_zero_exactly_when_the_t_test_is_significant():
    rng = np.random.default_rng(7)
    verdicts = []
    for shift in np.linspace(0.0, 0.5, 21):
        base = rng.random(25)
        system = np.clip(base + shift + rng.normal(0.0, 0.6, 25), 0, 1)
        ids = [f"q{i}" for i in range(25)]
        result = metric_result(dict(zip(ids, system)), dict(zip(ids, base)), is_baseline=False)
        assert result.p_value == pytest.approx(stats.ttest_rel(system, base).pvalue)
        excludes_zero = result.diff_ci_low > 0 or result.diff_ci_high < 0
        assert excludes_zero == result.significant == (result.p_value < 0.05), shift
        verdicts.append(result.significant)
    assert any(verdicts) and not all(verdicts)  # both cases were exercised


def test_interval_level_follows_alpha():
    values = np.array([0.1, 0.5, 0.3, 0.9, 0.4, 0.2])
    low, high = mean_interval(values, confidence=0.9)
    assert (low, high) == pytest.approx(stats.t.interval(0.9, 5, loc=values.mean(), scale=stats.sem(values)))
    qrels, runs = _runs_from_ranks(BASE_RANKS, SYSTEM_RANKS)
    comparison = compare(qrels, runs, "base", ["mrr"], alpha=0.1)
    assert comparison.interval_name == "90% t-interval"


def test_degenerate_intervals():
    assert mean_interval(np.array([0.25])) == (None, None)
    assert mean_interval(np.array([0.25, 0.25, 0.25])) == (0.25, 0.25)
    assert mean_interval(np.array([0.25, 0.25]), kind="bootstrap") == (0.25, 0.25)
    with pytest.raises(ValueError, match="unknown interval"):
        mean_interval(np.array([0.1, 0.2]), kind="wald")


def test_bootstrap_interval_of_the_randomization_test():
    qrels, runs = _runs_from_ranks(BASE_RANKS * 3, SYSTEM_RANKS * 3)
    comparison = compare(qrels, runs, "base", ["mrr"], test="fisher", n_permutations=4000, seed=3)
    assert comparison.interval == "bootstrap"
    assert comparison.interval_name == "95% bootstrap percentile interval, 4000 resamples"
    win = comparison.results["sys"]["mrr"]
    again = compare(qrels, runs, "base", ["mrr"], test="fisher", n_permutations=4000, seed=3).results["sys"]["mrr"]
    assert (win.diff_ci_low, win.diff_ci_high) == (again.diff_ci_low, again.diff_ci_high)
    # An independent percentile bootstrap of the mean per-query difference agrees up to Monte Carlo error.
    diff = np.array([1 / s - 1 / b for s, b in zip(SYSTEM_RANKS * 3, BASE_RANKS * 3)])
    rng = np.random.default_rng(0)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(4000)])
    expected = np.percentile(means, [2.5, 97.5])
    width = expected[1] - expected[0]
    assert win.diff_ci_low == pytest.approx(expected[0], abs=0.05 * width)
    assert win.diff_ci_high == pytest.approx(expected[1], abs=0.05 * width)


def test_comparison_json_round_trip_keeps_intervals_and_reads_old_files():
    qrels, runs = _runs_from_ranks(BASE_RANKS, SYSTEM_RANKS)
    comparison = compare(qrels, runs, "base", ["mrr", "hit_rate@1"])
    raw = json.loads(json.dumps(comparison.to_dict()))
    # As bench/quality.py read_comparison rebuilds it.
    results = {s: {m: MetricResult(**r) for m, r in row.items()} for s, row in raw.pop("results").items()}
    assert Comparison(results=results, **raw) == comparison
    old = {"mean": 0.5, "gain_pct": 1.0, "p_value": 0.2, "significant": False}  # written before intervals
    assert MetricResult(**old).diff_ci_low is None
    old_raw = {k: v for k, v in comparison.to_dict().items() if k not in ("results", "interval")}
    assert Comparison(results={"s": {"mrr": MetricResult(**old)}}, **old_raw).interval == "t"


def _interval_comparison() -> tuple[dict, Comparison]:
    qrels, runs = _runs_from_ranks(BASE_RANKS, SYSTEM_RANKS)
    runs["same"] = runs["base"]
    names = ["mrr", "hit_rate@1", "recall@5"]
    return evaluate(qrels, runs, names), compare(qrels, runs, "base", names)


def _segments(container: ErrorbarContainer) -> np.ndarray:
    """``(N, 2)`` bottom and top of each drawn error bar."""
    (lines,) = container.lines[2]
    return np.array([(seg[0][1], seg[1][1]) for seg in lines.get_segments()])


def test_metric_figure_draws_intervals_and_keeps_the_legend_off_the_axes():
    metrics, comparison = _interval_comparison()
    fig = metric_figure(metrics, comparison)
    means, differences = fig.axes
    bars = [c for c in means.containers if isinstance(c, BarContainer)]
    assert [b.get_label() for b in bars] == ["base (baseline)", "sys", "same"]
    for bar, system in zip(bars, metrics):
        results = comparison.results[system]
        expected = np.array([(results[m].ci_low, results[m].ci_high) for m in metrics[system]])
        assert _segments(bar.errorbar) == pytest.approx(expected)
    diff_bars = [c for c in differences.containers if isinstance(c, ErrorbarContainer)]
    assert len(diff_bars) == 2  # every system but the baseline
    sys = comparison.results["sys"]
    expected = np.array([(sys[m].diff_ci_low, sys[m].diff_ci_high) for m in metrics["sys"]])
    assert _segments(diff_bars[0]) == pytest.approx(expected)
    # Filled markers for the significant differences, hollow (white) for the others.
    markers = [c for c in differences.collections if isinstance(c, PathCollection)][0]
    filled = [tuple(face) != (1.0, 1.0, 1.0, 1.0) for face in markers.get_facecolors()]
    assert filled == [sys[m].significant for m in metrics["sys"]]
    assert any(filled) and not all(filled)
    # One figure legend, outside both panels.
    assert means.get_legend() is None and differences.get_legend() is None
    (legend,) = fig.legends
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)


def test_plot_metric_bars_writes_png_with_and_without_comparison(tmp_path):
    metrics, comparison = _interval_comparison()
    with_ci = plot_metric_bars(metrics, tmp_path / "ci.png", comparison=comparison)
    plain = plot_metric_bars(metrics, tmp_path / "plain.png")
    for path in (with_ci, plain):
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert len(metric_figure(metrics).axes) == 1  # no comparison: no difference panel, no error bars
    assert all(c.errorbar is None for c in metric_figure(metrics).axes[0].containers)


def test_format_differences_shows_intervals_and_stars():
    results = {
        "bm25": {"mrr": MetricResult(0.4560, 0.0, None, False, 0.40, 0.51)},
        "uae": {"mrr": MetricResult(0.5123, 12.345, 0.001, True, 0.46, 0.56, 0.0563, 0.0210, 0.0916)},
        "old": {"mrr": MetricResult(0.4, None, 0.5, False)},
    }
    table = format_differences(Comparison("bm25", "student", 0.05, 30, None, results))
    lines = table.splitlines()
    assert lines[0] == "| System | mrr |"
    assert lines[2:4] == ["| uae | +0.0563 [+0.0210, +0.0916]* |", "| old | - |"]
    assert "its 95% t-interval; * marks p < 0.05" in table


# ---------------------------------------------------------------- training summary


def _model_folder(root: Path, name: str, record: dict | None, log: list | None = None) -> Path:
    folder = root / name
    folder.mkdir()
    if record is not None:
        (folder / "uae_training.json").write_text(json.dumps(record))
    if log is not None:
        (folder / "training_log.json").write_text(json.dumps(log))
    return folder


def _record(loss: str, **extra) -> dict:
    return {
        "teacher": "hf:Qwen/Qwen2.5-0.5B-Instruct",
        "targets": {"tau_t": 0.1, "normalize": "none"},
        "data": {"path": "data/squad", "split": "train", "queries": 640},
        "base_model": "minilm",
        "loss": {"name": loss, "tau_s": 0.05, "in_batch_negatives": True, "hard_mix": 0.0},
        "training": {"loss": loss, "steps": 160, "batch_size": 8, "learning_rate": 3e-5, "tau_s": 0.05},
        "rows": 640,
        "skipped": {"no utilities (not labeled)": 3, "constant utilities": 2},
        **extra,
    }


def test_training_summary_reads_each_model_folder(tmp_path):
    log = [{"loss": 2.0, "step": 4}, {"train_runtime": 754.2, "train_loss": 1.9, "step": 160}]
    selection = {"metric": "recall@1", "base": 0.41, "best": 0.4523, "best_step": 120, "kept": "student", "curve": [1, 2]}
    models = {
        "uae": _model_folder(tmp_path, "uae", _record("um_infonce", selection=selection), log),
        "infonce_gold": _model_folder(tmp_path, "gold", _record("infonce_gold"), [{"train_runtime": 61.0, "step": 160}]),
        "sparse": _model_folder(tmp_path, "sparse", {"loss": {"name": "pool_kl"}, "teacher": {"teacher": "dirichlet", "kind": "x"}}),
        "untrained": _model_folder(tmp_path, "untrained", None),
    }
    lines = training_summary(models).splitlines()
    assert lines[0] == (
        "| Model | Loss | Teacher | tau_t | tau_s | Steps x batch | Rows | Learning rate | Selection | Training time |"
    )
    assert lines[2] == (
        "| uae | um_infonce | hf:Qwen/Qwen2.5-0.5B-Instruct | 0.1 | 0.05 | 160 x 8 | 640 (5 skipped) | 3e-05 | "
        "metric: recall@1; base: 0.41; best: 0.4523; best_step: 120; kept: student | 754 s (12.6 min) |"
    )
    assert lines[3] == (
        "| infonce_gold | infonce_gold | n/a (gold labels) | n/a (gold labels) | 0.05 | 160 x 8 | 640 (5 skipped) | 3e-05 | - | 61 s |"
    )
    assert lines[4] == "| sparse | pool_kl | dirichlet | - | - | - | - | - | - | - |"
    assert lines[5] == "| untrained | no uae_training.json | - | - | - | - | - | - | - | - |"
    assert "`train_runtime`" in lines[-1]


def test_training_summary_without_selection_and_with_a_teacher_mix(tmp_path):
    mix = {"teachers": ["a", "b"], "weights": [0.7, 0.3], "mode": "mean_distribution", "targets": {}}
    record = _record("um_infonce", teacher=mix)
    record["loss"]["hard_mix"] = 0.25
    lines = training_summary({"uae": _model_folder(tmp_path, "uae", record)}).splitlines()
    assert "Selection" not in lines[0]
    assert lines[2].startswith("| uae | um_infonce (hard_mix 0.25) | mix of a, b, mean_distribution, weights [0.7, 0.3] | 0.1 |")


def test_training_summary_names_a_broken_record(tmp_path):
    folder = _model_folder(tmp_path, "uae", None)
    (folder / "uae_training.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"uae_training.json: not valid JSON"):
        training_summary({"uae": folder})
    (folder / "uae_training.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        training_summary({"uae": folder})
