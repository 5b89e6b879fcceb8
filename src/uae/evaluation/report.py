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

from uae.evaluation.metrics import Comparison, MetricResult, Run, rank_passages

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
    metrics: Metrics, path: str | os.PathLike, title: str = "Retrieval quality"
) -> Path:
    """Grouped bar chart: one group per metric, one bar per system."""
    systems, names = list(metrics), _metric_names(metrics)
    width = 0.8 / max(len(systems), 1)
    x = np.arange(len(names))
    fig, ax = _figure(width=max(6.4, 1.2 * len(names)))
    for i, system in enumerate(systems):
        values = [metrics[system].get(m, math.nan) for m in names]
        ax.bar(x + (i - (len(systems) - 1) / 2) * width, values, width, label=system)
    ax.set_xticks(x, names)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


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
    return _write_text_atomic(out_dir / "report.md", "\n\n".join(p for p in parts if p) + "\n")


def write_metrics_json(path: str | os.PathLike, metrics: Metrics) -> Path:
    """Write ``{system: {metric: value}}`` as JSON, through a temporary file."""
    data = {system: {m: float(v) for m, v in row.items()} for system, row in metrics.items()}
    return _write_text_atomic(Path(path), json.dumps(data, indent=2) + "\n")


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
    return _write_text_atomic(Path(path), "".join(lines))


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
        outcome: a :class:`uae.selection.SelectionOutcome` (its history, base scores, best step).
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _check_trec_field(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"TREC run: {what} {value!r} must be non-empty and contain no whitespace")


def _write_text_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
