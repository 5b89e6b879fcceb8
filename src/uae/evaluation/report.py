"""Reports of an evaluation: Markdown and console tables, plots, report.md, metrics.json, TREC runs.

Plots are drawn on matplotlib ``Figure`` objects with the Agg canvas, never through pyplot,
so they need no display and leave matplotlib's global state alone.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from uae.evaluation.metrics import Comparison, MetricResult, rank_passages
from uae.io import atomic_write_text
from uae.retrieval.types import Run

Metrics = Mapping[str, Mapping[str, float]]
"""``{system: {metric: value}}``."""

LogHistory = list[dict]
"""A Hugging Face ``Trainer.state.log_history``: dicts with ``"step"`` and ``"loss"``/``"eval_loss"``."""


def format_table(metrics: Metrics, comparison: Comparison | None = None) -> str:
    """A Markdown table, systems as rows and metrics as columns, followed by its legend.

    With a ``comparison``, each non-baseline cell reads ``0.5123 (+12.3%*)``: the relative gain
    over the baseline and ``*`` when the paired test is significant.
    """
    header, rows = _table_cells(metrics, comparison)
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = [_markdown_row(header), _markdown_row(align), *(_markdown_row(row) for row in rows)]
    return "\n".join(lines) + "\n\n" + legend(comparison) + "\n"


def print_table(
    metrics: Metrics, comparison: Comparison | None = None, console: Console | None = None
) -> Table:
    """Print the table of ``format_table`` and its legend to the console with rich; return the table."""
    header, rows = _table_cells(metrics, comparison, gain_sep="\n")  # narrow columns for terminals
    table = Table()
    table.add_column(header[0])
    for name in header[1:]:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row)
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: wide enough that no cell is cut
            console = Console(width=max(console.width, 40 + 16 * len(header)))
    console.print(table)
    console.print(legend(comparison))
    return table


def legend(comparison: Comparison | None) -> str:
    """The line that explains the table's cells."""
    if comparison is None:
        return "Values are means over the evaluated queries."
    return (
        f"Means over {comparison.n_queries} queries. In parentheses: relative gain over the baseline "
        f"`{comparison.baseline}`; * marks p < {comparison.alpha:g} ({comparison.test_name}, "
        "no correction for multiple comparisons)."
    )


def format_differences(comparison: Comparison) -> str:
    """A Markdown table of each system's paired difference from the baseline, with its interval.

    Cells read ``+0.0512 [+0.0120, +0.0904]*``: the mean per-query difference, its confidence
    interval and ``*`` when the paired test is significant; ``-`` where no interval exists.
    The baseline has no row.
    """
    names = list(dict.fromkeys(m for row in comparison.results.values() for m in row))
    rows = [
        [system, *(_difference_cell(row.get(m)) for m in names)]
        for system, row in comparison.results.items()
        if system != comparison.baseline
    ]
    lines = [_markdown_row(["System", *names]), _markdown_row(["---"] + ["---:"] * len(names))]
    lines += [_markdown_row(row) for row in rows]
    note = (
        f"Mean per-query difference from `{comparison.baseline}` over {comparison.n_queries} queries, "
        f"in brackets its {comparison.interval_name}; * marks p < {comparison.alpha:g} ({comparison.test_name})."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def _difference_cell(result: MetricResult | None) -> str:
    if result is None or result.diff is None:
        return "-"
    star = "*" if result.significant else ""
    if result.diff_ci_low is None or result.diff_ci_high is None:
        return f"{result.diff:+.4f}{star}"
    return f"{result.diff:+.4f} [{result.diff_ci_low:+.4f}, {result.diff_ci_high:+.4f}]{star}"


def plot_utility_histogram(utilities: Sequence[float], path: str | os.PathLike, title: str) -> Path:
    """Histogram of passage utilities, with a line at zero (helpful right of it, harmful left).

    Raises:
        ValueError: No finite utility to plot.
    """
    values = np.asarray(utilities, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError(f"no finite utility to plot for {title!r}")
    fig, ax = _figure()
    ax.hist(finite, bins=50, color="tab:blue")
    ax.axvline(0.0, color="black", linewidth=1)
    left_out = values.size - finite.size
    ax.set_title(title + (f" ({left_out} non-finite left out)" if left_out else ""))
    ax.set_xlabel("utility (nats per answer token)")
    ax.set_ylabel("passages (log scale)")
    ax.set_yscale("log")  # a few helpful passages among many neutral ones: counts span decades
    return _save(fig, path)


def plot_training_loss(
    log_history: LogHistory | Mapping[str, LogHistory],
    path: str | os.PathLike,
    title: str = "Training loss",
) -> Path:
    """Loss against step, one curve per trained model (dashed: evaluation loss, when logged).

    Args:
        log_history: One ``Trainer.state.log_history``, or ``{model name: log_history}``.
        path: PNG to write.
        title: Plot title.
    """
    histories = {"train": log_history} if isinstance(log_history, list) else dict(log_history)
    fig, ax = _figure()
    drawn = False
    for name, history in histories.items():
        for key, style, label in (("loss", "-", name), ("eval_loss", "--", f"{name} (eval)")):
            steps, losses = _curve(history, key)
            if steps:
                ax.plot(steps, losses, style, label=label)
                drawn = True
    if drawn:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no loss was logged", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    return _save(fig, path)


def plot_metric_bars(
    metrics: Metrics,
    path: str | os.PathLike,
    title: str = "Retrieval quality",
    comparison: Comparison | None = None,
) -> Path:
    """Write the figure of :func:`metric_figure` to a PNG."""
    return _save(metric_figure(metrics, comparison, title), path)


def metric_figure(metrics: Metrics, comparison: Comparison | None = None, title: str = "Retrieval quality") -> Figure:
    """Grouped bars of each system's mean per metric and, with a comparison, its difference from the baseline.

    Top panel: one group per metric, one bar per system, with the confidence interval of the
    system's mean as error bars. Bottom panel (when ``comparison`` holds a system besides the
    baseline): each system's paired difference from the baseline with its confidence interval;
    a filled marker is significant (``p < alpha``), a hollow one is not. With the t-test the
    difference interval excludes 0 exactly when the marker is filled. One legend for both
    panels sits below them, off the bars.

    Args:
        metrics: ``{system: {metric: mean}}``, systems in drawing order.
        comparison: Intervals and tests of ``compare``; ``None`` draws the means alone.
        title: Figure title.
    """
    systems, names = list(metrics), _metric_names(metrics)
    others = [s for s in systems if comparison is not None and s != comparison.baseline and s in comparison.results]
    fig = Figure(figsize=_metric_figure_size(len(systems), len(names), 2 if others else 1), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if others else 1, 1, sharex=True, squeeze=False)[:, 0]
    layout = _BarLayout(systems, len(names))
    _draw_means(axes[0], metrics, names, layout, comparison)
    if others:
        _draw_differences(axes[1], names, others, layout, comparison)
    for ax in axes:
        for boundary in np.arange(len(names) - 1) + 0.5:
            ax.axvline(boundary, color="0.85", linewidth=0.8, zorder=0)
    axes[-1].set_xticks(np.arange(len(names)), names, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    axes[-1].set_xlim(-0.5, len(names) - 0.5)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=_legend_columns(len(systems)), frameon=False)
    fig.suptitle(title)
    return fig


class _BarLayout:
    """x position and colour of each system's bar inside a metric group, shared by both panels."""

    def __init__(self, systems: Sequence[str], n_metrics: int) -> None:
        self.width = 0.8 / max(len(systems), 1)
        self.x = np.arange(n_metrics)
        self.offset = {s: (i - (len(systems) - 1) / 2) * self.width for i, s in enumerate(systems)}
        self.color = {s: f"C{i % 10}" for i, s in enumerate(systems)}


def _draw_means(ax: Axes, metrics: Metrics, names: list[str], layout: _BarLayout, comparison: Comparison | None) -> None:
    for system, row in metrics.items():
        values = np.array([row.get(m, math.nan) for m in names], dtype=float)
        results = comparison.results.get(system, {}) if comparison else {}
        intervals = [(r.ci_low, r.ci_high) if (r := results.get(m)) else (None, None) for m in names]
        is_baseline = comparison is not None and system == comparison.baseline
        ax.bar(
            layout.x + layout.offset[system],
            values,
            layout.width,
            color=layout.color[system],
            label=f"{system} (baseline)" if is_baseline else system,
            yerr=_error_sizes(values, intervals) if comparison else None,
            error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "black"},
        )
    ax.set_ylim(bottom=0)
    ax.set_ylabel("mean")
    if comparison is not None:
        ax.set_title(f"Mean over the evaluated queries, error bars: {comparison.interval_name} of the mean", fontsize="medium")


def _draw_differences(ax: Axes, names: list[str], systems: list[str], layout: _BarLayout, comparison: Comparison) -> None:
    for system in systems:
        results = [comparison.results[system].get(m) for m in names]
        diffs = np.array([r.diff if r is not None and r.diff is not None else math.nan for r in results], dtype=float)
        intervals = [(r.diff_ci_low, r.diff_ci_high) if r is not None else (None, None) for r in results]
        x = layout.x + layout.offset[system]
        color = layout.color[system]
        ax.errorbar(x, diffs, yerr=_error_sizes(diffs, intervals), fmt="none", ecolor=color, elinewidth=1.2, capsize=3)
        filled = [color if r is not None and r.significant else "white" for r in results]
        ax.scatter(x, diffs, s=22, facecolors=filled, edgecolors=color, linewidths=1.2, zorder=3)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylabel(f"difference from {comparison.baseline}")
    ax.set_title(
        f"Paired difference from {comparison.baseline}, {comparison.interval_name}; "
        f"filled: p < {comparison.alpha:g} ({comparison.test_name})",
        fontsize="medium",
    )


def _error_sizes(centres: np.ndarray, intervals: Sequence[tuple[float | None, float | None]]) -> np.ndarray:
    """``(2, N)`` distances from each centre down and up to its interval's ends; NaN draws no bar."""
    low = np.array([math.nan if lo is None else lo for lo, _ in intervals], dtype=float)
    high = np.array([math.nan if hi is None else hi for _, hi in intervals], dtype=float)
    # A bootstrap percentile interval may, in rare skewed cases, not contain the mean; matplotlib
    # refuses negative error sizes, so such an end is drawn at the mean.
    return np.clip(np.vstack([centres - low, high - centres]), 0.0, None)


def _legend_columns(n_systems: int) -> int:
    """One legend row up to 8 systems, else rows of equal length."""
    return n_systems if n_systems <= 8 else math.ceil(n_systems / math.ceil(n_systems / 8))


def _metric_figure_size(n_systems: int, n_metrics: int, panels: int) -> tuple[float, float]:
    width = min(24.0, max(8.0, 0.2 * n_systems * n_metrics + 2.5))
    return width, 3.4 * panels + 1.0 + 0.25 * math.ceil(n_systems / _legend_columns(n_systems))


def write_report(
    out_dir: str | os.PathLike,
    title: str,
    intro_lines: list[str],
    metrics: Metrics,
    comparison: Comparison | None,
    plots: Mapping[str, Path],
    extra_sections: Mapping[str, str] | None = None,
) -> Path:
    """Write ``out_dir/report.md``: title, intro, results table with legend, plots, extra sections.

    Args:
        out_dir: Folder of the report; plots are linked by paths relative to it.
        title: Top heading.
        intro_lines: Markdown lines written as given; say which teacher, data and model produced it.
        metrics: ``{system: {metric: value}}``.
        comparison: Gains and significance against a baseline, or ``None``.
        plots: ``{caption: PNG path}``.
        extra_sections: ``{heading: Markdown body}``, appended in order.

    Raises:
        FileNotFoundError: A plot file does not exist.
    """
    out_dir = Path(out_dir)
    table = format_table(metrics, comparison).rstrip()
    parts = [f"# {title}", "\n".join(intro_lines), "## Results", table]
    if plots:
        parts.append("## Plots")
        parts.extend(_plot_markdown(caption, Path(png), out_dir) for caption, png in plots.items())
    for heading, body in (extra_sections or {}).items():
        parts.extend([f"## {heading}", body.rstrip()])
    return atomic_write_text(out_dir / "report.md", "\n\n".join(p for p in parts if p) + "\n")


def training_summary(models: Mapping[str, str | os.PathLike]) -> str:
    """A Markdown table of how each model was really trained, read from its model folder.

    One row per model from ``uae_training.json`` (written by ``uae.training.trainer.train_model``):
    loss, teacher, teacher and student temperatures, steps x batch, training rows (and skipped
    queries), learning rate, the dev model selection's outcome when the record has one, and the
    trainer's wall time (``train_runtime`` of ``training_log.json``). Missing keys show as ``-``;
    a folder without a record gets a row that says so. For losses on gold evidence the teacher
    and ``tau_t`` show as ``n/a (gold labels)``: they did not shape those labels.

    Args:
        models: ``{model name: model folder}``, rows in this order.

    Returns:
        The table and a line explaining its columns.

    Raises:
        ValueError: A record or log is not valid JSON, or a record is not a JSON object (names the file).
    """
    from uae.training.trainer import TRAINING_LOG, TRAINING_RECORD

    records = {name: _read_json(Path(folder) / TRAINING_RECORD) for name, folder in models.items()}
    with_selection = any(isinstance(r, dict) and "selection" in r for r in records.values())
    header = ["Model", "Loss", "Teacher", "tau_t", "tau_s", "Steps x batch", "Rows", "Learning rate"]
    header += ["Selection"] * with_selection + ["Training time"]
    rows = []
    for name, folder in models.items():
        record, log = records[name], _read_json(Path(folder) / TRAINING_LOG)
        if record is None:
            rows.append([name, f"no {TRAINING_RECORD}", *["-"] * (len(header) - 3), _training_time(log)])
            continue
        if not isinstance(record, dict):
            raise ValueError(f"{Path(folder) / TRAINING_RECORD}: expected a JSON object, got {type(record).__name__}")
        cells = _record_cells(record)
        rows.append([name, *cells] + ([_brief(record.get("selection"))] if with_selection else []) + [_training_time(log)])
    lines = [_markdown_row(header), _markdown_row(["---"] * len(header)), *(_markdown_row(r) for r in rows)]
    note = (
        "From each model folder's `uae_training.json`. tau_t: teacher temperature of the targets; tau_s: student "
        "temperature; Rows: training queries (skipped ones in parentheses); Training time: the trainer's `train_runtime` "
        "(only the last session when training resumed from a checkpoint)."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def _record_cells(record: Mapping) -> list[str]:
    """Loss, teacher, tau_t, tau_s, steps x batch, rows, learning rate of one training record."""
    loss, training = _mapping(record.get("loss")), _mapping(record.get("training"))
    loss_name = loss.get("name", training.get("loss"))
    hard_mix = loss.get("hard_mix") or 0.0
    on_gold = _is_gold_loss(loss_name)
    steps, batch = training.get("steps"), training.get("batch_size")
    skipped = sum(v for v in _mapping(record.get("skipped")).values() if isinstance(v, int | float))
    rows = record.get("rows")
    return [
        _brief(loss_name) + (f" (hard_mix {hard_mix:g})" if hard_mix else ""),
        "n/a (gold labels)" if on_gold else _teacher_name(record.get("teacher")),
        "n/a (gold labels)" if on_gold else _brief(_mapping(record.get("targets")).get("tau_t")),
        _brief(loss.get("tau_s", training.get("tau_s") if loss_name != "margin_mse" else None)),
        f"{_brief(steps)} x {_brief(batch)}" if steps is not None or batch is not None else "-",
        _brief(rows) + (f" ({skipped:g} skipped)" if skipped else ""),
        _brief(training.get("learning_rate")),
    ]


def _is_gold_loss(name: object) -> bool:
    from uae.training.losses import LOSSES

    return isinstance(name, str) and name in LOSSES and LOSSES[name].label_kind == "gold"


def _teacher_name(teacher: object) -> str:
    """A teacher spec (``"hf:..."``), a teacher's ``describe()`` dict, or a mix of teachers, in words."""
    if isinstance(teacher, Mapping):
        if "teachers" in teacher:
            mode = f", {teacher['mode']}" if teacher.get("mode") else ""
            weights = f", weights {teacher['weights']}" if teacher.get("weights") else ""
            return f"mix of {', '.join(map(str, teacher['teachers']))}{mode}{weights}"
        if "teacher" in teacher:
            return _brief(teacher["teacher"])
    return _brief(teacher)


def _training_time(log: object) -> str:
    entries = [e for e in log if isinstance(e, Mapping) and "train_runtime" in e] if isinstance(log, list) else []
    if not entries:
        return "-"
    seconds = float(entries[-1]["train_runtime"])
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def _brief(value: object) -> str:
    """A value in one short cell: floats with 4 significant digits, mappings as ``key: value; ...`` (nested ones left out)."""
    if value is None:
        return "-"
    if isinstance(value, bool | str | int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_brief(v)}" for k, v in value.items() if not isinstance(v, Mapping | list))
    return json.dumps(value, default=str)


def _mapping(value: object) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _read_json(path: Path) -> object | None:
    """The parsed file, ``None`` when absent."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def write_metrics_json(path: str | os.PathLike, metrics: Metrics) -> Path:
    """Write ``{system: {metric: value}}`` as JSON, through a temporary file."""
    data = {system: {m: float(v) for m, v in row.items()} for system, row in metrics.items()}
    return atomic_write_text(Path(path), json.dumps(data, indent=2) + "\n")


def read_metrics_json(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Read what ``write_metrics_json`` wrote."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_trec_run(run: Run, path: str | os.PathLike, tag: str) -> Path:
    """Write ``run`` in TREC format, ``qid Q0 docid rank score tag``, in ``rank_passages`` order.

    Raises:
        ValueError: The tag or an id is empty or contains whitespace.
    """
    _check_trec_field(tag, "run tag")
    lines = []
    for qid, ranked in run.items():
        _check_trec_field(qid, "query id")
        for rank, pid in enumerate(rank_passages(ranked), start=1):
            _check_trec_field(pid, f"passage id (query {qid!r})")
            lines.append(f"{qid} Q0 {pid} {rank} {float(ranked[pid])!r} {tag}\n")
    return atomic_write_text(Path(path), "".join(lines))


def _table_cells(
    metrics: Metrics, comparison: Comparison | None, gain_sep: str = " "
) -> tuple[list[str], list[list[str]]]:
    names = _metric_names(metrics)
    rows = []
    for system, row in metrics.items():
        is_baseline = comparison is not None and system == comparison.baseline
        label = f"{system}{gain_sep}(baseline)" if is_baseline else system
        results = comparison.results.get(system, {}) if comparison and not is_baseline else {}
        rows.append([label] + [_cell(row.get(m), results.get(m), gain_sep) for m in names])
    return ["System", *names], rows


def _cell(value: float | None, result: MetricResult | None, gain_sep: str) -> str:
    if value is None:
        return "-"
    if result is None:
        return f"{value:.4f}"
    gain = "n/a" if result.gain_pct is None else f"{result.gain_pct:+.1f}%"
    return f"{value:.4f}{gain_sep}({gain}{'*' if result.significant else ''})"


def _metric_names(metrics: Metrics) -> list[str]:
    return list(dict.fromkeys(m for row in metrics.values() for m in row))


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _plot_markdown(caption: str, png: Path, out_dir: Path) -> str:
    if not png.is_file():
        raise FileNotFoundError(f"plot {caption!r}: no file at {png}")
    relative = Path(os.path.relpath(png.resolve(), out_dir.resolve())).as_posix()
    return f"### {caption}\n\n![{caption}]({relative})"


def plot_dev_curve(outcome, path: str | os.PathLike) -> Path:
    """Dev metrics of the student against training steps, the base encoder's as dashed lines.

    Args:
        outcome: a :class:`uae.training.selection.SelectionOutcome` (its history, base scores, best step).
        path: PNG to write.
    """
    fig, ax = _figure(width=7.0)
    names = [m for m in outcome.base if any(m in h for h in outcome.history)]
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    for name in names:
        steps = [h["step"] for h in outcome.history if name in h]
        ax.plot(steps, [h[name] for h in outcome.history if name in h], marker="o", color=colors[name], label=name)
        ax.axhline(outcome.base[name], color=colors[name], linestyle="--", linewidth=1)
    if outcome.best_step is not None:
        ax.axvline(outcome.best_step, color="grey", linestyle=":", label=f"kept: step {outcome.best_step}")
    ax.set_xlabel("step")
    ax.set_ylabel("dev score (dashed: base encoder)")
    ax.set_title(f"Model selection on {outcome.dev_questions} dev questions ({outcome.metric}); shipped: {outcome.shipped}")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    return _save(fig, path)


def _curve(history: LogHistory, key: str) -> tuple[list[float], list[float]]:
    points = [(e["step"], e[key]) for e in history if key in e and "step" in e]
    return [p[0] for p in points], [p[1] for p in points]


def _figure(width: float = 6.4, height: float = 4.0) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _check_trec_field(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"TREC run: {what} {value!r} must be non-empty and contain no whitespace")

