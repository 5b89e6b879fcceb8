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

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from uae.retrieval.bm25 import BM25Index
from uae.config import GenerationConfig, RunConfig
from uae.data.beir import read_dataset
from uae.data.schema import Dataset, Query, SkipReport
from uae.data.tables import Pools, read_pools, write_pools
from uae.labeling import label_pools, read_labels
from uae.retrieval.mining import mine_pools
from uae.rerankers import Reranker, latency_summary, rerank_run
from uae.retrieval.types import hits_to_run, Run
from uae.retrieval.retriever import Retriever
from uae.targets import utilities_from_nlls
from uae.teachers import Teacher, load_teacher
from uae.training import DEV_CURVE, build_training_rows, label_kind_of, read_training_log, train_model

console = Console()
_retrievers: dict[tuple[str, int], Retriever] = {}


def corpus_retriever(model_path: str, dataset: Dataset, progress: bool = True) -> Retriever:
    """The corpus encoded by ``model_path``, built once per process (mining and eval share the base)."""
    key = (str(model_path), id(dataset.corpus))
    if key not in _retrievers:
        _retrievers[key] = Retriever.build(str(model_path), dataset.corpus, progress=progress)
    return _retrievers[key]


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


def report_skips(stage: str, skipped: SkipReport) -> None:
    """Print what a stage left out (nothing is dropped silently)."""
    for line in skipped.lines():
        console.print(f"[yellow]{stage}: {line}")


def stage_mine(config: RunConfig, dataset: Dataset, queries: Sequence[Query], progress: bool = True) -> Pools:
    """Mine (or reuse) candidate pools for ``queries``; writes ``pools.parquet``."""
    out = config.out_dir
    path = out / "pools.parquet"
    key = _stage_key(stage="mine", data=config.data, model=config.base_model, mining=config.mining.model_dump(), queries=[q.id for q in queries])
    if path.is_file() and _is_done(out / "stages" / "mine", key):
        console.print(f"reusing {path}")
        return read_pools(path)
    console.print(f"[bold]mine[/]: pools of {config.mining.pool_size} from BM25 + {config.base_model}, {len(queries)} queries")
    retriever = corpus_retriever(config.base_model, dataset, progress)
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
                out: Path | None = None, record: dict | None = None) -> Path:
    """Train one model with ``loss`` into ``out`` (default ``models/<name>``), reused when settings are unchanged.

    The one training path (``uae run`` and ``uae train`` both come here): hold out a dev split of
    ``queries`` by document (:func:`uae.selection.split_dev`), build the rows of the others, and
    train with model selection on the dev split (:func:`uae.training.train_model`). ``record``
    adds entries to the model's ``uae_training.json`` (e.g. the teachers of a mixed target).
    """
    from uae.data.splits import query_documents
    from uae.selection import build_dev_set, split_dev

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
        console.print(f"train {name}: target rules changed rows: {dict(rows.adjusted)}")
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
    train_model(rows, config.base_model, out, training, full_record, dev, config.selection)
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
              scopes_only: bool = False) -> Run:
    """Encode the corpus with ``model_path`` and search it with ``queries`` (scoped when they have a doc_id).

    ``scopes_only``: when every query is scoped and the corpus is not encoded yet, encode only the
    documents they search (:func:`scopes_corpus`); the results are the same.
    """
    searched = scopes_corpus(dataset, queries) if scopes_only and (str(model_path), id(dataset.corpus)) not in _retrievers else None
    retriever = Retriever.build(str(model_path), searched.corpus, progress=progress) if searched else corpus_retriever(str(model_path), dataset, progress)
    if save_index is not None:
        retriever.save(save_index)
    hits = retriever.search([q.text for q in queries], depth, [q.doc_id for q in queries], progress=progress)
    return hits_to_run([q.id for q in queries], hits)


def bm25_run(dataset: Dataset, queries: Sequence[Query], depth: int) -> Run:
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


ANSWER_RECALL_KS = (1, 5)
NO_ANSWER_RETRIEVED = "<no retrieved passage holds the answer>"


def answer_recall(dataset: Dataset, queries: Sequence[Query], runs: dict[str, Run], baseline: str, test: str = "student",
                  ks: Sequence[int] = ANSWER_RECALL_KS):
    """``answer_recall@k`` of every run, with gains and paired tests against ``baseline``.

    ``answer_recall@k``: share of queries whose top-``k`` passages hold a gold answer in their text
    (body, not title; SQuAD normalisation, whole tokens), as :func:`uae.evaluation.answer_recall_at_k`
    computes it. Gains and p-values come from :func:`uae.evaluation.compare` on "answer qrels": for
    each query, the passages of any run's top-``max(ks)`` that hold an answer (a placeholder id when
    none does), on which ``hit_rate@k`` is the same share; the two are checked to agree. Queries whose
    answers normalise to nothing are left out (and logged), as ``answer_recall_at_k`` does.

    Returns:
        ``({system: {"answer_recall@k": value}}, Comparison)``, or ``({}, None)`` when no query has a usable answer.
    """
    from uae.evaluation import answer_recall_at_k, compare, normalize_answer, rank_passages

    depth = max(ks)
    answers = {q.id: [n for a in q.answers if (n := normalize_answer(a))] for q in queries}
    answers = {qid: normalized for qid, normalized in answers.items() if normalized}
    if not answers:
        return {}, None
    tops = {system: {qid: rank_passages(run.get(qid, {}))[:depth] for qid in answers} for system, run in runs.items()}
    texts = {pid: dataset.corpus[pid].text for top in tops.values() for pids in top.values() for pid in pids}
    padded = {pid: f" {normalize_answer(text)} " for pid, text in texts.items()}
    qrels = {}
    for qid, golds in answers.items():
        holding = {pid for top in tops.values() for pid in top[qid] if any(f" {g} " in padded[pid] for g in golds)}
        qrels[qid] = dict.fromkeys(sorted(holding), 1) or {NO_ANSWER_RETRIEVED: 1}
    names = {f"hit_rate@{k}": f"answer_recall@{k}" for k in ks}
    comparison = compare(qrels, runs, baseline=baseline, metrics=list(names), test=test)
    comparison.results.update({system: {names[m]: r for m, r in row.items()} for system, row in comparison.results.items()})
    values = {}
    gold_answers = {qid: dataset.queries[qid].answers for qid in answers}
    for system, run in runs.items():
        values[system] = {names[f"hit_rate@{k}"]: answer_recall_at_k(run, texts, gold_answers, k) for k in ks}
        for metric, value in values[system].items():
            if abs(comparison.results[system][metric].mean - value) > 1e-9:
                raise RuntimeError(f"answer recall of {system}: {metric} {value} but hit_rate on answer qrels "
                                   f"{comparison.results[system][metric].mean}; the two definitions disagree")
    return values, comparison


def stage_eval(config: RunConfig, dataset: Dataset, models: dict[str, Path], utilities, seconds_so_far: float = 0.0, progress: bool = True,
               rerankers: dict[str, Reranker] | None = None, rerank_depth: int = 20,
               generation: GenerationConfig | None = None) -> dict[str, dict[str, float]]:
    """Evaluate BM25, the base encoder, the teacher oracle, every trained model and re-ranker; write the report.

    ``rerankers`` (``{system name: Reranker}``) re-rank the base encoder's top-``rerank_depth``;
    their per-query latency goes into the report. ``generation`` (default ``config.generation``)
    adds answer quality: a reader answers from each system's top-k, Token F1 / EM join the table.
    """
    from uae.evaluation import compare, evaluate, print_table, write_metrics_json
    from uae.evaluation.report import (format_differences, plot_metric_bars, plot_training_loss, plot_utility_histogram,
                                       training_summary, write_report)
    from uae.training import pool_utilities

    started = time.perf_counter()
    out = config.out_dir
    queries, skipped = dataset.usable_queries(config.eval.split)
    report_skips(f"eval ({config.eval.split})", skipped)
    qrels = {q.id: dataset.qrels[config.eval.split][q.id] for q in queries}
    depth = config.eval.depth
    console.print(f"[bold]eval[/]: {len(queries)} {config.eval.split} queries")
    runs: dict[str, Run] = {"bm25": bm25_run(dataset, queries, depth)}
    scopes_only = config.eval.encode_scopes_only
    runs["base"] = dense_run(config.base_model, dataset, queries, depth, progress=progress, scopes_only=scopes_only)
    for name, model_dir in models.items():
        runs[name] = dense_run(str(model_dir), dataset, queries, depth, save_index=out / "index" if name == "uae" else None, progress=progress,
                               scopes_only=scopes_only)
    oracle_teacher = load_teacher(config.labeling.teacher)
    runs["teacher_oracle"] = teacher_oracle_run(oracle_teacher, dataset, queries, runs["base"], 20, config.labeling.aggregate)
    rerank_section = None
    if rerankers:
        rerun, rerank_section = rerank_runs(rerankers, dataset, queries, runs["base"], rerank_depth, progress)
        runs.update(rerun)

    metrics = evaluate(qrels, runs)
    comparison = compare(qrels, runs, baseline=config.eval.baseline, test=config.eval.significance)
    answer_values, answer_comparison = answer_recall(dataset, queries, runs, config.eval.baseline, config.eval.significance)
    for system, row in answer_values.items():
        metrics[system].update(row)
        comparison.results.setdefault(system, {}).update(answer_comparison.results[system])
    generation = generation or config.generation
    answer_section = None
    if generation is not None:
        from uae.evaluation.answer_quality import add_answer_quality

        answer_section = add_answer_quality(generation, runs, queries, dataset.corpus, out / "generations", metrics, comparison, progress)
    write_metrics_json(out / "metrics.json", metrics)
    (out / "comparison.json").write_text(json.dumps(comparison.to_dict(), indent=2) + "\n")
    plots = {
        **({"Utility distribution (training pools)": plot_utility_histogram(pool_utilities(utilities), out / "utility_hist.png", f"u(d) = nll(a|q) - nll(a|q,d), teacher {oracle_teacher.name}")} if utilities else {}),
        **({"Training loss": plot_training_loss({name: read_training_log(path) for name, path in models.items()}, out / "training_loss.png")} if models else {}),
        **{f"Model selection of `{name}`: dev metrics against steps (dashed: the base encoder)": path / DEV_CURVE
           for name, path in models.items() if (path / DEV_CURVE).is_file()},
        "Metrics, with 95% confidence intervals (bottom: paired difference from the baseline)": plot_metric_bars(
            metrics, out / "metrics.png", comparison=comparison),
    }
    intro = [
        f"Data: `{config.data}`, {len(queries)} {config.eval.split} queries ({skipped.total} skipped: {skipped.to_dict()}).",
        f"Base encoder: `{config.base_model}`. Teacher (labels and oracle): `{oracle_teacher.name}` — {oracle_teacher.describe().get('kind', 'language model')}.",
        "Systems: " + ", ".join(
            ["`bm25` (bm25s)", "`base` (base encoder zero-shot)"]
            + [f"`{n}` ({json.loads((p / 'uae_training.json').read_text())['loss']['name']})" for n, p in models.items()]
            + ["`teacher_oracle` (the teacher re-ranking the base top-20 *with the gold answer*: an upper bound, not deployable)"]
        ) + ".",
        f"Relative gains and paired {config.eval.significance} tests are against `{config.eval.baseline}`.",
        *([f"`answer_recall@k`: share of the {answer_comparison.n_queries} queries whose top-k passages hold a gold answer in their text "
           "(SQuAD normalisation, whole tokens); only meaningful for extractive answers."] if answer_comparison else []),
        f"Wall time: this evaluation {time.perf_counter() - started:.0f} s"
        + (f", the whole run {seconds_so_far + time.perf_counter() - started:.0f} s." if seconds_so_far else "."),
    ]
    sections = {
        **({"How each model was trained": training_summary(models)} if models else {}),
        "Differences from the baseline": format_differences(comparison),
        "Evaluation settings": "```json\n" + config.eval.model_dump_json(indent=2) + "\n```",
    }
    if rerank_section:
        intro.insert(3, "Re-rankers: " + ", ".join(f"`{n}` (`{r.spec}`, base top-{rerank_depth})" for n, r in rerankers.items())
                     + "; latency and caveats in the Re-rankers section.")
        sections = {"Re-rankers": rerank_section, **sections}
    if answer_section:
        sections = {"Answer quality": answer_section, **sections}
    write_report(out, "UAE evaluation", intro, metrics, comparison, plots, extra_sections=sections)
    print_table(metrics, comparison)
    return metrics


def run_pipeline(config: RunConfig, progress: bool = True, dataset: Dataset | None = None,
                 extra_models: dict[str, Path] | None = None) -> RunResult:
    """Every stage on ``config.data``; returns the metrics, the wall time and the time per stage.

    ``dataset``: an already loaded dataset to use instead of reading the BEIR folder
    ``config.data`` (e.g. a registry dataset re-split by document, as ``bench/quality.py``
    builds it); ``config.data`` then only describes it in the stage keys and the report.
    ``extra_models``: ``{system: model folder}`` of other runs, evaluated beside this run's models.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(stage: str, step):
        begun = time.perf_counter()
        value = step()
        timings[stage] = time.perf_counter() - begun
        return value

    config = evidence_free(config)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    (config.out_dir / "config.json").write_text(config.model_dump_json(indent=2))
    dataset = dataset if dataset is not None else read_dataset(config.data)
    train_queries, train_skipped = dataset.usable_queries(config.train_split, evidence=config.evidence)
    report_skips(f"train split ({config.train_split})", train_skipped)
    pools = timed("mine", lambda: stage_mine(config, training_view(config, dataset), train_queries, progress))
    utilities = timed("label", lambda: stage_label(config, dataset, train_queries, pools, progress=progress))
    models = {"uae": timed("train uae", lambda: stage_train(config, dataset, train_queries, pools, utilities, config.training.loss, "uae"))}
    if config.compare_infonce_gold:
        models["infonce_gold"] = timed("train infonce_gold", lambda: stage_train(config, dataset, train_queries, pools, utilities, "infonce_gold", "infonce_gold"))
    models.update(extra_models or {})
    metrics = timed("eval", lambda: stage_eval(config, dataset, models, utilities, time.perf_counter() - started, progress))
    seconds = time.perf_counter() - started
    console.print(f"done in {seconds:.0f} s; report: {config.out_dir / 'report.md'}")
    return RunResult(config.out_dir, metrics, seconds, {"train": train_skipped.to_dict()}, timings)
