"""The ``uae`` command: thin wrappers that parse arguments and call the library."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

app = typer.Typer(
    help="Utility-Aligned Embeddings: train retrievers on what helps an LLM answer.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()

DataDir = Annotated[Path, typer.Argument(help="BEIR folder with answers: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")]


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code=2)


def _guarded(action):
    """Run ``action``; input errors become one red line and exit code 2, not a traceback."""
    from uae.data.beir import DataError
    from uae.labeling import ManifestMismatch
    from uae.retriever import ModelIndexMismatch

    try:
        return action()
    except (DataError, ManifestMismatch, ModelIndexMismatch, ValueError, FileNotFoundError) as err:
        _fail(str(err))


def _peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="run folder")] = Path("runs/quickstart"),
    steps: Annotated[int, typer.Option(help="training steps")] = 0,
    fresh: Annotated[bool, typer.Option(help="recompute every stage")] = False,
) -> None:
    """Every stage, offline, on the embedded synthetic QA set: MiniLM base, Dirichlet teacher."""
    from uae.pipeline import run_pipeline
    from uae.quickstart import quickstart_config, write_quickstart_data

    started = time.perf_counter()
    if fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    data_dir = write_quickstart_data(out / "data")
    config = quickstart_config(data_dir, out, steps or None)
    result = _guarded(lambda: run_pipeline(config))
    stats = {"wall_seconds": round(time.perf_counter() - started, 1), "peak_memory_mib": round(_peak_memory_mib(), 1)}
    (out / "run_stats.json").write_text(json.dumps(stats, indent=2))
    with open(out / "report.md", "a", encoding="utf-8") as report:
        report.write(f"\n## Cost\n\nWall time {stats['wall_seconds']} s, peak memory {stats['peak_memory_mib']} MiB "
                     f"(resident set of the `uae quickstart` process), on {os.cpu_count()} CPU cores.\n")
    console.print(f"quickstart: {stats['wall_seconds']} s, peak memory {stats['peak_memory_mib']} MiB; "
                  f"metrics in {result.out_dir / 'metrics.json'}")


@app.command()
def run(config_path: Annotated[Path, typer.Argument(help="YAML config (see examples/config.yaml)")]) -> None:
    """Every stage on your own data, as described by a config file."""
    from uae.config import load_config
    from uae.pipeline import run_pipeline

    config = _guarded(lambda: load_config(config_path))
    _guarded(lambda: run_pipeline(config))


@app.command()
def mine(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="pools parquet file")] = Path("pools.parquet"),
    split: Annotated[str, typer.Option(help="qrels split whose queries get pools")] = "train",
    model: Annotated[str, typer.Option(help="base encoder (path, hub name, or 'minilm')")] = "minilm",
    pool_size: Annotated[int, typer.Option(help="candidates per query")] = 16,
    depth: Annotated[int, typer.Option(help="depth of each ranking before fusion")] = 100,
    include_gold: Annotated[bool, typer.Option(help="always include gold evidence")] = True,
) -> None:
    """Mine candidate pools with BM25 + the base encoder, fused by reciprocal rank."""
    from uae.data.beir import read_dataset
    from uae.data.tables import write_pools
    from uae.mining import mine_pools
    from uae.pipeline import report_skips
    from uae.retriever import Retriever

    def action():
        dataset = read_dataset(data)
        queries, skipped = dataset.usable_queries(split)
        report_skips("mine", skipped)
        retriever = Retriever.build(model, dataset.corpus)
        pools = mine_pools(dataset, queries, retriever, pool_size, depth, include_gold)
        write_pools(pools, out)
        console.print(f"wrote {len(pools)} pools of up to {pool_size} to {out}")

    _guarded(action)


@app.command()
def label(
    data: DataDir,
    pools: Annotated[Path, typer.Option(help="pools parquet from `uae mine`")] = Path("pools.parquet"),
    out: Annotated[Path, typer.Option(help="labels folder (resumable)")] = Path("labels"),
    teacher: Annotated[str, typer.Option(help="dirichlet | dirichlet:mu=N | hf:<model-or-path>")] = "dirichlet",
    part_queries: Annotated[int, typer.Option(help="queries per part file (unit of resumption)")] = 64,
    batch_tokens: Annotated[int, typer.Option(help="hf: padded tokens per forward pass")] = 4096,
) -> None:
    """Score each pooled passage: the answer's NLL with and without it, per gold answer."""
    from uae.data.beir import read_dataset
    from uae.data.tables import read_pools
    from uae.labeling import label_pools
    from uae.pipeline import report_skips
    from uae.teachers import load_teacher

    def action():
        dataset = read_dataset(data)
        pool_table = read_pools(pools)
        queries = [dataset.queries[qid] for qid in pool_table if qid in dataset.queries]
        options = {"batch_tokens": batch_tokens} if teacher.startswith("hf:") else {}
        summary = label_pools(queries, pool_table, dataset.corpus, load_teacher(teacher, **options), out, part_queries)
        report_skips("label", summary.skipped)
        console.print(json.dumps(summary.to_dict(), indent=2))

    _guarded(action)


@app.command()
def train(
    data: DataDir,
    pools: Annotated[Path, typer.Option(help="pools parquet from `uae mine`")] = Path("pools.parquet"),
    labels: Annotated[Optional[Path], typer.Option(help="labels folder from `uae label` (not needed for infonce_gold)")] = None,
    out: Annotated[Path, typer.Option(help="output model folder")] = Path("model"),
    base_model: Annotated[str, typer.Option(help="encoder to fine-tune")] = "minilm",
    loss: Annotated[str, typer.Option(help="um_infonce | infonce_gold | hard_utility | pool_kl | margin_mse")] = "um_infonce",
    tau_t: Annotated[float, typer.Option(help="teacher temperature")] = 1.0,
    tau_s: Annotated[float, typer.Option(help="student temperature")] = 0.05,
    normalize: Annotated[str, typer.Option(help="none | zscore (per-query utility normalisation)")] = "none",
    hard_mix: Annotated[float, typer.Option(help="weight of hard InfoNCE on the top-utility passage")] = 0.0,
    steps: Annotated[int, typer.Option()] = 60,
    batch_size: Annotated[int, typer.Option(help="queries per step")] = 16,
    train_pool_size: Annotated[Optional[int], typer.Option(help="passages per query in training")] = None,
    learning_rate: Annotated[float, typer.Option()] = 3e-5,
    max_seq_length: Annotated[int, typer.Option()] = 128,
    aggregate: Annotated[str, typer.Option(help="mean | max over several gold answers")] = "mean",
    seed: Annotated[int, typer.Option()] = 13,
) -> None:
    """Fine-tune the encoder on utility targets (or an ablation loss) with sentence-transformers."""
    from uae.config import TargetsConfig, TrainingConfig
    from uae.data.beir import read_dataset
    from uae.data.tables import read_pools
    from uae.labeling import read_labels
    from uae.pipeline import report_skips
    from uae.targets import utilities_from_nlls
    from uae.training import build_training_rows, label_kind_of, train_model

    def action():
        training = TrainingConfig(loss=loss, tau_s=tau_s, hard_mix=hard_mix, steps=steps, batch_size=batch_size,
                                  train_pool_size=train_pool_size, learning_rate=learning_rate,
                                  max_seq_length=max_seq_length, seed=seed)
        targets = TargetsConfig(tau_t=tau_t, normalize=normalize)
        dataset = read_dataset(data)
        pool_table = read_pools(pools)
        queries = [dataset.queries[qid] for qid in pool_table if qid in dataset.queries]
        utilities = None
        if label_kind_of(loss) != "gold":
            if labels is None:
                _fail(f"loss {loss} learns from utilities: pass --labels from `uae label`")
            utilities, skipped = utilities_from_nlls(read_labels(labels), aggregate)
            report_skips("utilities", skipped)
        size = train_pool_size or max(len(c) for c in pool_table.values())
        rows = build_training_rows(queries, pool_table, dataset.corpus, label_kind_of(loss), utilities, targets, size, seed)
        report_skips("train", rows.skipped)
        teacher = json.loads((labels / "manifest.json").read_text())["teacher"] if labels else None
        record = {"teacher": teacher, "targets": targets.model_dump(), "data": {"path": str(data), "queries": len(rows.queries)}}
        train_model(rows, base_model, out, training, record)
        console.print(f"saved model to {out}")

    _guarded(action)


@app.command()
def index(
    model: Annotated[str, typer.Argument(help="model folder (or 'minilm')")],
    data: DataDir,
    out: Annotated[Path, typer.Option(help="index folder")] = Path("index"),
) -> None:
    """Encode the corpus with MODEL and write a FAISS index bound to it."""
    from uae.data.beir import read_dataset
    from uae.retriever import Retriever

    def action():
        dataset = read_dataset(data)
        Retriever.build(model, dataset.corpus).save(out)
        console.print(f"indexed {len(dataset.corpus)} passages into {out}")

    _guarded(action)


@app.command()
def search(
    index_dir: Annotated[Path, typer.Argument(help="index folder from `uae index` or a run's index/")],
    query: Annotated[list[str], typer.Argument(help="one or more queries")],
    k: Annotated[int, typer.Option("-k", help="passages per query")] = 5,
    scope: Annotated[Optional[str], typer.Option(help="search only the passages of this doc_id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Search an index with the model it was built with."""
    from uae.retriever import Retriever

    def action():
        retriever = Retriever.load(index_dir)
        results = retriever.search(query, k, [scope] * len(query))
        texts = {p.id: p.text for p in retriever.index.passages}
        if as_json:
            payload = [{"query": q, "hits": [{"id": h.passage_id, "score": h.score, "text": texts[h.passage_id]} for h in hits]}
                       for q, hits in zip(query, results)]
            console.print_json(json.dumps(payload))
            return
        for text, hits in zip(query, results):
            console.print(f"[bold]{text}")
            for rank, hit in enumerate(hits, start=1):
                console.print(f"  {rank}. [cyan]{hit.passage_id}[/] {hit.score:.4f}  {texts[hit.passage_id][:120]}")

    _guarded(action)


@app.command(name="eval")
def evaluate_command(
    data: DataDir,
    system: Annotated[list[str], typer.Option(help="NAME=MODEL_DIR, repeatable; bm25 and base are always included")] = [],
    split: Annotated[str, typer.Option(help="qrels split to evaluate")] = "test",
    out: Annotated[Path, typer.Option(help="folder for metrics.json and report.md")] = Path("eval"),
    base_model: Annotated[str, typer.Option(help="base encoder")] = "minilm",
    depth: Annotated[int, typer.Option(help="ranking depth")] = 100,
    teacher: Annotated[str, typer.Option(help="teacher of the oracle row")] = "dirichlet",
) -> None:
    """Compare BM25, the base encoder, the teacher oracle and trained models on a split."""
    from uae.config import EvalConfig, LabelingConfig, RunConfig
    from uae.data.beir import read_dataset
    from uae.pipeline import stage_eval

    def action():
        models = {}
        for item in system:
            name, sep, path = item.partition("=")
            if not sep or not Path(path).is_dir():
                _fail(f"--system expects NAME=MODEL_DIR with an existing folder, got {item!r}")
            models[name] = Path(path)
        config = RunConfig(data=str(data), out=str(out), base_model=base_model,
                           labeling=LabelingConfig(teacher=teacher), eval=EvalConfig(split=split, depth=depth))
        out.mkdir(parents=True, exist_ok=True)
        stage_eval(config, read_dataset(data), models, utilities={})

    _guarded(action)


if __name__ == "__main__":
    app()
