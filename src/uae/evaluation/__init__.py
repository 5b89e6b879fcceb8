"""Evaluation: how good a retriever is, and the report that says so.

- :mod:`~uae.evaluation.metrics`: retrieval metrics (ranx), paired significance tests, confidence
  intervals, answer recall (re-exported here).
- :mod:`~uae.evaluation.readers`: readers that answer from retrieved passages (extractive, hf, openai);
  :mod:`~uae.evaluation.answer_quality`: their Token F1 / EM against the gold answers, resumable.
- :mod:`~uae.evaluation.cross_teacher`: judging retrievers by another teacher (graded qrels,
  TREC-pooled judgements, utility nDCG, Kendall tau).
- :mod:`~uae.evaluation.report`: tables, plots and ``report.md`` (re-exported here).
"""

from uae.evaluation.metrics import (
    DEFAULT_METRICS,
    Comparison,
    MetricResult,
    answer_recall_at_k,
    compare,
    evaluable_qrels,
    evaluate,
    interval_kind,
    mean_interval,
    metric_result,
    normalize_answer,
    paired_p_value,
    per_query,
    rank_passages,
    to_ranx_metric,
)
from uae.evaluation.report import (
    format_differences,
    format_table,
    legend,
    metric_figure,
    plot_metric_bars,
    plot_training_loss,
    plot_utility_histogram,
    print_table,
    read_metrics_json,
    training_summary,
    write_metrics_json,
    write_report,
    write_trec_run,
)

__all__ = [
    "DEFAULT_METRICS",
    "Comparison",
    "MetricResult",
    "answer_recall_at_k",
    "compare",
    "evaluable_qrels",
    "evaluate",
    "format_differences",
    "format_table",
    "interval_kind",
    "legend",
    "mean_interval",
    "metric_figure",
    "metric_result",
    "normalize_answer",
    "paired_p_value",
    "per_query",
    "plot_metric_bars",
    "plot_training_loss",
    "plot_utility_histogram",
    "print_table",
    "rank_passages",
    "read_metrics_json",
    "to_ranx_metric",
    "training_summary",
    "write_metrics_json",
    "write_report",
    "write_trec_run",
]
