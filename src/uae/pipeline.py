"""The stages chained: mine -> label -> train -> index -> eval.

Each stage reads and writes files under the run folder, so any stage can be rerun,
resumed or inspected alone; ``uae run CONFIG.yaml`` calls :func:`run_pipeline`, and the
CLI's per-stage commands call the stage functions directly. A finished stage is reused
when its inputs and settings are unchanged (``stage.json`` holds their hash).

Run folder::

    pools.parquet            candidate pools (train and eval queries)
    labels/                  answer NLLs (parts, manifest, nlls.parquet)
    models/<system>/         sentence-transformers folders (uae, infonce_gold)
    index/                   FAISS index of the UAE model
    metrics.json, report.md  the comparison, with plots
    generations/<system>.jsonl  answers from each system's top-k (with ``generation``), resumable
    comparison.json          gains and paired p-values against the baseline, per system and metric
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Sequence
from datetime import timedelta
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from uae.config import GenerationConfig, RunConfig
from uae.data.beir import read_dataset
from uae.data.schema import Dataset, Qrels, Query, SkipReport
from uae.data.tables import Pools, read_pools, write_pools
from uae.evaluation.metrics import Comparison
from uae.io import atomic_write_json
from uae.labeling import label_pools, read_labels
from uae.progress import report_skips
from uae.rerankers import Reranker, latency_summary, rerank_run
from uae.retrieval.bm25 import BM25Index
from uae.retrieval.embedding_cache import EMBEDDINGS_FOLDER, EmbeddingCache
from uae.retrieval.index import is_index_folder
from uae.retrieval.mining import mine_pools
from uae.retrieval.retriever import Retriever, RetrieverCache
from uae.retrieval.types import Run, hits_to_run
from uae.targets.utilities import utilities_from_nlls
from uae.teachers import Teacher, load_teacher
from uae.training.losses import label_kind_of

console = Console()


@dataclass
class RunResult:
    """What :func:`run_pipeline` produced."""

    out_dir: Path
    metrics: dict[str, dict[str, float]]
    seconds: float
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Wall seconds per stage: ``mine``, ``label``, ``train <name>``, ``eval``."""


def _stage_key(**inputs) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _is_done(folder: Path, key: str) -> bool:
    marker = folder / "stage.json"
    return marker.is_file() and json.loads(marker.read_text()).get("key") == key


def _mark_done(folder: Path, key: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stage.json").write_text(json.dumps({"key": key}))


def stage_mine(config: RunConfig, dataset: Dataset, queries: Sequence[Query], progress: bool = True,
               retrievers: RetrieverCache | None = None) -> Pools:
    """Mine (or reuse) candidate pools for ``queries``; writes ``pools.parquet``.

    ``retrievers``: where the base encoder's encoding of the corpus is kept for the evaluation of the same run.
    """
    out = config.out_dir
    path = out / "pools.parquet"
    key = _stage_key(stage="mine", data=config.data, model=config.base_model, mining=config.mining.model_dump(), queries=[q.id for q in queries])
    if path.is_file() and _is_done(out / "stages" / "mine", key):
        console.print(f"reusing {path}")
        return read_pools(path)
    console.print(f"[bold]mine[/]: pools of {config.mining.pool_size} from BM25 + {config.base_model}, {len(queries)} queries")
    retriever = (retrievers or RetrieverCache()).get(config.base_model, dataset.corpus, progress)
    pools = mine_pools(dataset, queries, retriever, config.mining.pool_size, config.mining.depth, config.mining.include_gold, progress=progress)
    write_pools(pools, path)
    _mark_done(out / "stages" / "mine", key)
    return pools


def stage_label(config: RunConfig, dataset: Dataset, queries: Sequence[Query], pools: Pools, teacher: Teacher | None = None, progress: bool = True) -> dict[str, dict[str, float]]:
    """Label the pools of ``queries`` with the teacher (resumable) and return their utilities."""
    teacher = teacher or load_teacher(config.labeling.teacher)
    summary = label_pools(queries, pools, dataset.corpus, teacher, config.out_dir / "labels", config.labeling.part_queries, progress=progress)
    report_skips("label", summary.skipped)
    console.print(f"label: {summary.pairs} (query, passage) pairs, {summary.parts_reused} parts reused, teacher {teacher.name}")
    utilities, skipped = utilities_from_nlls(read_labels(config.out_dir / "labels"), config.labeling.aggregate)
    report_skips("utilities", skipped)
    return utilities


def training_view(config: RunConfig, dataset: Dataset) -> Dataset:
    """What the training stages may read: the dataset, or without its evidence labels when ``config.evidence`` is off."""
    return dataset if config.evidence else dataset.without_evidence()


def evidence_free(config: RunConfig) -> RunConfig:
    """``config`` as the no-evidence recipe runs it: pools mined without gold, rows by utility, selection on utility.

    Raises:
        ValueError: a setting that needs evidence labels was asked for explicitly.
    """
    if config.evidence:
        return config
    if config.selection.metric == "evidence":
        raise ValueError("selection.metric 'evidence' needs evidence labels; with evidence: false use utility or answer")
    if label_kind_of(config.training.loss) == "gold":
        raise ValueError(f"loss {config.training.loss} learns from evidence labels; with evidence: false use a utility loss")
    selection = config.training.pool_selection if config.training.pool_selection != "gold_first" else "utility_first"
    return config.model_copy(update={
        "mining": config.mining.model_copy(update={"include_gold": False}),
        "training": config.training.model_copy(update={"pool_selection": selection}),
        "compare_infonce_gold": False,
    })


def stage_train(config: RunConfig, dataset: Dataset, queries: Sequence[Query], pools: Pools, utilities, loss: str, name: str,
                out: Path | None = None, record: dict | None = None, progress: bool = True) -> Path:
    """Train one model with ``loss`` into ``out`` (default ``models/<name>``), reused when settings are unchanged.

    The one training path (``uae run`` and ``uae train`` both come here): hold out a dev split of
    ``queries`` by document (:func:`uae.training.selection.split_dev`), build the rows of the others
    (:func:`uae.training.rows.build_training_rows`), and train with model selection on the dev split
    (:func:`uae.training.trainer.train_model`). ``record``
    adds entries to the model's ``uae_training.json`` (e.g. the teachers of a mixed target).
    """
    from uae.data.splits import query_documents
    from uae.training.rows import build_training_rows
    from uae.training.selection import build_dev_set, split_dev
    from uae.training.trainer import train_model

    out = out or config.out_dir / "models" / name
    training = config.training.model_copy(update={"loss": loss})
    on_gold = label_kind_of(loss) == "gold"  # labels from qrels: the teacher, targets and hard_mix do not change this model
    key = _stage_key(stage="train", base=config.base_model, evidence=config.evidence,
                     training=training.model_dump(exclude={"hard_mix", "pool_selection"} if on_gold else {"multi_positive"}),
                     targets=None if on_gold else config.targets.model_dump(), selection=config.selection.model_dump(),
                     teacher=None if on_gold else config.labeling.teacher, pools=config.mining.model_dump(),
                     queries=[q.id for q in queries], record=record)
    if (out / "uae_training.json").is_file() and _is_done(out / "stage", key):
        console.print(f"reusing {out}")
        return out
    seen = training_view(config, dataset)
    split = split_dev(queries, query_documents(seen), config.selection.dev_fraction, config.selection.min_dev_questions, training.seed)
    if split.reason:
        console.print(f"[yellow]train {name}: no model selection: {split.reason}")
    rows = build_training_rows(
        split.train, pools, dataset.corpus, label_kind_of(loss), utilities, config.targets,
        training.train_pool_size or config.mining.pool_size, training.seed, training.pool_selection, training.max_gold,
    )
    report_skips(f"train {name}", rows.skipped)
    if rows.adjusted:
        console.print(f"train {name}: target rules changed rows: {dict(rows.adjusted)} (confidence threshold "
                      f"{rows.confidence_threshold:.3g} nats/token)" if rows.confidence_threshold else
                      f"train {name}: target rules changed rows: {dict(rows.adjusted)}")
    qrels = seen.qrels.get(config.train_split) if config.evidence else None
    dev = build_dev_set(dataset, split, pools, utilities, qrels) if split.dev else None
    console.print(f"[bold]train {name}[/]: loss {loss}, {len(rows.queries)} queries, up to {training.steps} steps of "
                  f"{training.batch_size}; dev split {len(split.dev)} questions from {split.documents} documents")
    full_record = {
        "teacher": None if on_gold else config.labeling.teacher,
        "targets": None if on_gold else config.targets.model_dump(),
        "evidence": config.evidence,
        "data": {"path": config.data, "split": config.train_split, "queries": len(rows.queries), "dev_questions": len(split.dev)},
        "mining": config.mining.model_dump(),
        **({"selection": {"dev": None, "reason": split.reason}} if split.reason else {}),
        **(record or {}),
    }
    train_model(rows, config.base_model, out, training, full_record, dev, config.selection, progress)
    _mark_done(out / "stage", key)
    return out


def scopes_corpus(dataset: Dataset, queries: Sequence[Query]) -> Dataset | None:
    """``dataset`` with only the passages of the documents ``queries`` search; ``None`` if one is unscoped.

    A scoped search never looks outside its document, so a dense retriever over this corpus
    returns exactly what one over the whole corpus would, for less encoding.
    """
    import dataclasses

    from uae.data.schema import Corpus

    if not queries or any(q.doc_id is None for q in queries):
        return None
    scopes = {q.doc_id for q in queries}
    return dataclasses.replace(dataset, corpus=Corpus(p for p in dataset.corpus if p.doc_id in scopes))


def dense_run(model_path: str, dataset: Dataset, queries: Sequence[Query], depth: int, save_index: Path | None = None, progress: bool = True,
              scopes_only: bool = False, retrievers: RetrieverCache | None = None) -> Run:
    """Encode the corpus with ``model_path`` (or take it from ``retrievers``) and search it with ``queries``.

    ``model_path`` may also be an index folder (``uae index``, FAISS or a vector database): its
    model and index are loaded and searched instead of encoding the corpus.
    Queries with a doc_id search only that document. ``scopes_only``: when every query is scoped
    and the corpus is not encoded yet, encode only the documents they search (:func:`scopes_corpus`);
    the results are the same.
    """
    if is_index_folder(model_path):  # an index from `uae index` (FAISS or a vector database), searched as built
        hits = Retriever.load(model_path).search([q.text for q in queries], depth, [q.doc_id for q in queries], progress=progress)
        return hits_to_run([q.id for q in queries], hits)
    retrievers = retrievers if retrievers is not None else RetrieverCache()
    searched = scopes_corpus(dataset, queries) if scopes_only and (str(model_path), dataset.corpus) not in retrievers else None
    retriever = (Retriever.build(str(model_path), searched.corpus, progress=progress, embeddings=retrievers.embeddings) if searched
                 else retrievers.get(str(model_path), dataset.corpus, progress))
    if save_index is not None:
        retriever.save(save_index)
    hits = retriever.search([q.text for q in queries], depth, [q.doc_id for q in queries], progress=progress)
    return hits_to_run([q.id for q in queries], hits)


def bm25_run(dataset: Dataset, queries: Sequence[Query], depth: int) -> Run:
    """BM25's top-``depth`` for ``queries`` (scoped when they have a doc_id)."""
    hits = BM25Index(dataset.corpus).search([q.text for q in queries], depth, [q.doc_id for q in queries])
    return hits_to_run([q.id for q in queries], hits)


def teacher_oracle_run(teacher: Teacher, dataset: Dataset, queries: Sequence[Query], first_stage: Run, depth: int, aggregate: str = "mean") -> Run:
    """Re-rank the top-``depth`` of ``first_stage`` by the teacher's utility *with the gold answer*.

    An upper bound, not a system a user can deploy: it reads the answer it is asked to find.
    Runs :class:`uae.rerankers.oracle.OracleReranker`; the run holds the top-``depth`` only.
    """
    from uae.rerankers.oracle import OracleReranker

    return rerank_run(OracleReranker(teacher, aggregate), queries, first_stage, dataset.corpus, depth, keep_tail=False)


def rerank_runs(rerankers: dict[str, Reranker], dataset: Dataset, queries: Sequence[Query], first_stage: Run, depth: int, progress: bool = True) -> tuple[dict[str, Run], str]:
    """Each re-ranker over the top-``depth`` of ``first_stage``; returns the runs and a Markdown section on them."""
    runs, rows = {}, []
    for name, reranker in rerankers.items():
        console.print(f"[bold]rerank {name}[/]: {reranker.spec}, top-{depth} of the base encoder, {len(queries)} queries")
        runs[name] = rerank_run(reranker, queries, first_stage, dataset.corpus, depth, progress=progress)
        stats = latency_summary(reranker.latencies)
        rows.append(f"| `{name}` | `{reranker.spec}` | {stats['queries']} | {stats['p50_ms']:.1f} | {stats['p95_ms']:.1f} "
                    f"| {stats['mean_ms']:.1f} | {', '.join(f'{k} {v}' for k, v in reranker.repairs.items()) or '-'} | {reranker.caveat() or '-'} |")
    section = "\n".join([
        f"Each re-ranker re-scores the base encoder's top-{depth}; passages below keep their first-stage order. "
        "Latency: wall time per query of the re-ranker alone (first stage excluded), on this machine.",
        "",
        "| System | Spec | Queries | p50 ms | p95 ms | mean ms | Repairs | Caveat |",
        "|---|---|---:|---:|---:|---:|---|---|",
        *rows,
    ])
    return runs, section


@dataclass
class EvalScores:
    """The metrics table of an evaluation and its comparison against the baseline."""

    metrics: dict[str, dict[str, float]]
    comparison: Comparison
    answer_comparison: Comparison | None = None
    """The comparison on answer recall, when some query has a usable answer."""


def stage_eval(config: RunConfig, dataset: Dataset, models: dict[str, Path], utilities, seconds_so_far: float = 0.0, progress: bool = True,
               rerankers: dict[str, Reranker] | None = None, rerank_depth: int = 20,
               generation: GenerationConfig | None = None, retrievers: RetrieverCache | None = None,
               trec_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """Evaluate BM25, the base encoder, the teacher oracle, every trained model and re-ranker; write the report.

    ``trec_dir``: also write one TREC run file per system there (``NAME.run``, tag NAME), to score
    with trec_eval or ir_measures.

    ``rerankers`` (``{system name: Reranker}``) re-rank the base encoder's top-``rerank_depth``;
    their per-query latency goes into the report. ``generation`` (default ``config.generation``)
    adds answer quality: a reader answers from each system's top-k, Token F1 / EM join the table.
    ``retrievers`` holds corpora already encoded in this run (the base encoder's, by mining).
    """
    started = time.perf_counter()
    queries, skipped = dataset.usable_queries(config.eval.split)
    report_skips(f"eval ({config.eval.split})", skipped)
    console.print(f"[bold]eval[/]: {len(queries)} {config.eval.split} queries")
    teacher = load_teacher(config.labeling.teacher)
    runs = eval_runs(config, dataset, queries, models, teacher, retrievers if retrievers is not None else RetrieverCache(), progress)
    sections: dict[str, str] = {}
    if rerankers:
        reranked, sections["Re-rankers"] = rerank_runs(rerankers, dataset, queries, runs["base"], rerank_depth, progress)
        runs.update(reranked)
    scores = score_runs(config, dataset, queries, runs)
    generation = generation or config.generation
    if generation is not None:
        from uae.evaluation.answer_quality import add_answer_quality

        sections = {"Answer quality": add_answer_quality(generation, runs, queries, dataset.corpus, config.out_dir / "generations",
                                                         scores.metrics, scores.comparison, progress), **sections}
    write_eval_results(config.out_dir, scores)
    if trec_dir is not None:
        from uae.evaluation.report import write_trec_run

        Path(trec_dir).mkdir(parents=True, exist_ok=True)
        for name, run in runs.items():
            write_trec_run(run, Path(trec_dir) / f"{name}.run", name)
    plots = eval_plots(config.out_dir, models, utilities, teacher, scores)
    intro = eval_intro(config, queries, skipped, models, teacher, scores, rerankers, rerank_depth, seconds_so_far,
                       time.perf_counter() - started)
    write_eval_report(config, models, scores, plots, intro, sections)
    return scores.metrics


def eval_runs(config: RunConfig, dataset: Dataset, queries: Sequence[Query], models: dict[str, Path], teacher: Teacher,
              retrievers: RetrieverCache, progress: bool = True) -> dict[str, Run]:
    """The runs of BM25, the base encoder, every model (the index of ``uae`` is saved) and the teacher oracle.

    The oracle re-ranks the base encoder's top-``config.eval.oracle_depth``.
    """
    depth, scopes_only = config.eval.depth, config.eval.encode_scopes_only
    runs: dict[str, Run] = {"bm25": bm25_run(dataset, queries, depth)}
    runs["base"] = dense_run(config.base_model, dataset, queries, depth, progress=progress, scopes_only=scopes_only, retrievers=retrievers)
    for name, model_dir in models.items():
        runs[name] = dense_run(str(model_dir), dataset, queries, depth, save_index=config.out_dir / "index" if name == "uae" else None,
                               progress=progress, scopes_only=scopes_only, retrievers=retrievers)
    if config.eval.hybrid:
        from uae.retrieval.mining import fuse_runs
        from uae.retrieval.retriever import RRF_K

        for name in ["base", *models]:
            runs[f"{name}+bm25"] = fuse_runs([runs[name], runs["bm25"]], depth, RRF_K)
    runs["teacher_oracle"] = teacher_oracle_run(teacher, dataset, queries, runs["base"], config.eval.oracle_depth, config.labeling.aggregate)
    return runs


def score_runs(config: RunConfig, dataset: Dataset, queries: Sequence[Query], runs: dict[str, Run]) -> EvalScores:
    """Retrieval metrics and answer recall of every run on the evaluated split, with paired tests against the baseline."""
    from uae.evaluation import compare, evaluate
    from uae.evaluation.metrics import answer_recall

    qrels: Qrels = {q.id: dataset.qrels[config.eval.split][q.id] for q in queries}
    metrics = evaluate(qrels, runs)
    comparison = compare(qrels, runs, baseline=config.eval.baseline, test=config.eval.significance)
    answer_values, answer_comparison = answer_recall(dataset, queries, runs, config.eval.baseline, config.eval.significance)
    for system, row in answer_values.items():
        metrics[system].update(row)
        comparison.results.setdefault(system, {}).update(answer_comparison.results[system])
    return EvalScores(metrics, comparison, answer_comparison)


def write_eval_results(out: Path, scores: EvalScores) -> None:
    """``metrics.json`` and ``comparison.json``."""
    from uae.evaluation import write_metrics_json

    write_metrics_json(out / "metrics.json", scores.metrics)
    atomic_write_json(out / "comparison.json", scores.comparison.to_dict())


def eval_intro(config: RunConfig, queries: Sequence[Query], skipped: SkipReport, models: dict[str, Path], teacher: Teacher,
               scores: EvalScores, rerankers: dict[str, Reranker] | None, rerank_depth: int, seconds_so_far: float,
               seconds: float) -> list[str]:
    """The report's opening paragraphs: data, base encoder, teacher, systems, tests, re-rankers, wall time."""
    models_described = [f"`{n}` ({json.loads((p / 'uae_training.json').read_text())['loss']['name']})" for n, p in models.items()]
    intro = [
        f"Data: `{config.data}`, {len(queries)} {config.eval.split} queries ({skipped.total} skipped: {skipped.to_dict()}).",
        f"Base encoder: `{config.base_model}`. Teacher (labels and oracle): `{teacher.name}` — {teacher.describe().get('kind', 'language model')}.",
        "Systems: " + ", ".join(
            ["`bm25` (bm25s)", "`base` (base encoder zero-shot)"] + models_described
            + [f"`teacher_oracle` (the teacher re-ranking the base top-{config.eval.oracle_depth} *with the gold answer*: "
               "an upper bound, not deployable)"]
        ) + ".",
        f"Relative gains and paired {config.eval.significance} tests are against `{config.eval.baseline}`.",
        *([f"`answer_recall@k`: share of the {scores.answer_comparison.n_queries} queries whose top-k passages hold a gold answer "
           "in their text (SQuAD normalisation, whole tokens); only meaningful for extractive answers."]
          if scores.answer_comparison else []),
        f"Wall time: this evaluation {seconds:.0f} s" + (f", the whole run {seconds_so_far + seconds:.0f} s." if seconds_so_far else "."),
    ]
    if rerankers:
        intro.insert(3, "Re-rankers: " + ", ".join(f"`{n}` (`{r.spec}`, base top-{rerank_depth})" for n, r in rerankers.items())
                     + "; latency and caveats in the Re-rankers section.")
    return intro


def eval_plots(out: Path, models: dict[str, Path], utilities, teacher: Teacher, scores: EvalScores) -> dict[str, Path]:
    """The report's figures, drawn into ``out``: utility histogram, training loss, dev curves, metric bars."""
    from uae.evaluation.report import plot_metric_bars, plot_training_loss, plot_utility_histogram
    from uae.targets.utilities import pool_utilities
    from uae.training.trainer import DEV_CURVE, read_training_log

    return {
        **({"Utility distribution (training pools)": plot_utility_histogram(
            pool_utilities(utilities), out / "utility_hist.png", f"u(d) = nll(a|q) - nll(a|q,d), teacher {teacher.name}")}
           if utilities else {}),
        **({"Training loss": plot_training_loss({name: read_training_log(path) for name, path in models.items()}, out / "training_loss.png")}
           if models else {}),
        **{f"Model selection of `{name}`: dev metrics against steps (dashed: the base encoder)": path / DEV_CURVE
           for name, path in models.items() if (path / DEV_CURVE).is_file()},
        "Metrics, with 95% confidence intervals (bottom: paired difference from the baseline)": plot_metric_bars(
            scores.metrics, out / "metrics.png", comparison=scores.comparison),
    }


def write_eval_report(config: RunConfig, models: dict[str, Path], scores: EvalScores, plots: dict[str, Path], intro: list[str],
                      sections: dict[str, str]) -> None:
    """``report.md``; the metrics table on the console.

    ``sections``: report sections (answer quality, re-rankers) that go before the standard ones.
    """
    from uae.evaluation import print_table
    from uae.evaluation.report import format_differences, training_summary, write_report

    sections = {
        **sections,
        **({"How each model was trained": training_summary(models)} if models else {}),
        "Differences from the baseline": format_differences(scores.comparison),
        "Evaluation settings": "```json\n" + config.eval.model_dump_json(indent=2) + "\n```",
    }
    write_report(config.out_dir, "UAE evaluation", intro, scores.metrics, scores.comparison, plots, extra_sections=sections)
    print_table(scores.metrics, scores.comparison)


def distributed_state():
    """accelerate's process state under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1), else ``None``.

    The process group is opened here, before the trainer would, with a long timeout: the other
    processes wait at a barrier while process 0 mines and labels, which can take hours.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    from uae.training.trainer import cpu_data_parallel

    return PartialState(cpu=cpu_data_parallel(), timeout=timedelta(hours=48))


def run_pipeline(config: RunConfig, progress: bool = True, dataset: Dataset | None = None,
                 extra_models: dict[str, Path] | None = None) -> RunResult:
    """Every stage on ``config.data``; returns the metrics, the wall time and the time per stage.

    ``dataset``: an already loaded dataset to use instead of reading the BEIR folder
    ``config.data`` (e.g. a registry dataset re-split by document, as ``bench/quality.py``
    builds it); ``config.data`` then only describes it in the stage keys and the report.
    ``extra_models``: ``{system: model folder}`` of other runs, evaluated beside this run's models.

    Under ``torchrun`` / ``accelerate launch`` process 0 mines and labels while the others wait
    (they then reuse its files), every process trains (data-parallel, negatives gathered across
    processes), and process 0 alone evaluates; the others return empty metrics.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(stage: str, step):
        begun = time.perf_counter()
        value = step()
        timings[stage] = time.perf_counter() - begun
        return value

    config = evidence_free(config)
    # the base encoder's encoding of the corpus, shared by mining and eval; every model's vectors stay on disk for reruns
    retrievers = RetrieverCache(EmbeddingCache(config.out_dir / EMBEDDINGS_FOLDER))
    config.out_dir.mkdir(parents=True, exist_ok=True)
    (config.out_dir / "config.json").write_text(config.model_dump_json(indent=2))
    dataset = dataset if dataset is not None else read_dataset(config.data)
    train_queries, train_skipped = dataset.training_queries(config.train_split, evidence=config.evidence)
    report_skips(f"train split ({config.train_split})", train_skipped)
    state = distributed_state()
    with state.main_process_first() if state else contextlib.nullcontext():
        pools = timed("mine", lambda: stage_mine(config, training_view(config, dataset), train_queries, progress, retrievers))
        utilities = timed("label", lambda: stage_label(config, dataset, train_queries, pools, progress=progress))
    models = {"uae": timed("train uae", lambda: stage_train(config, dataset, train_queries, pools, utilities, config.training.loss, "uae",
                                                            progress=progress))}
    if config.compare_infonce_gold:
        models["infonce_gold"] = timed("train infonce_gold", lambda: stage_train(config, dataset, train_queries, pools, utilities,
                                                                                 "infonce_gold", "infonce_gold", progress=progress))
    models.update(extra_models or {})
    if state and not state.is_main_process:
        return RunResult(config.out_dir, {}, time.perf_counter() - started, {"train": train_skipped.to_dict()}, timings)
    metrics = timed("eval", lambda: stage_eval(config, dataset, models, utilities, time.perf_counter() - started, progress,
                                               retrievers=retrievers))
    from uae.training.trainer import add_eval_to_card

    for name in ("uae", "infonce_gold"):  # the models this run trained (not those of --compare)
        if name in models and name not in (extra_models or {}):
            add_eval_to_card(models[name], metrics, config.eval.split, name)
    seconds = time.perf_counter() - started
    console.print(f"done in {seconds:.0f} s; report: {config.out_dir / 'report.md'}")
    return RunResult(config.out_dir, metrics, seconds, {"train": train_skipped.to_dict()}, timings)
