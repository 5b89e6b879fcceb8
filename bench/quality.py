"""Retrieval quality of UAE against its baselines on a real dataset, split by document.

    python bench/quality.py --dataset squad-v1.1 --data-dir ../shared/data/squad -o scoped=true \\
        --train-limit 1000 --eval-limit 2000 --out runs/quality-squad
    python bench/quality.py --quick            # SQuAD v1.1, small limits, the same code path

What it does, all through ``uae.pipeline.run_pipeline`` (nothing of the pipeline is repeated here):

1. loads ``--dataset`` (a registry name, or ``beir`` for a BEIR folder with answers) and splits
   it by document with :func:`uae.data.splits.split_by_document` (train 0.6 / dev 0.1 / test 0.3
   of the documents), so that no document has questions on both sides; a BEIR folder that has
   ``qrels/train.tsv`` and ``qrels/test.tsv`` keeps them (checked for shared documents);
2. keeps a seeded random sample of ``--train-limit`` train questions and of ``--eval-limit`` dev
   and test questions each (the same sample whichever split is evaluated, so a dev run and a test
   run in the same ``--out`` share mining, labels and trained models); when every kept question is
   scoped (searches only its own document), the corpus is cut to the kept documents, which leaves
   each dense scoped search unchanged;
3. mines pools (BM25 + base encoder), labels them with ``--teacher``, and trains from the same base,
   on the same pools, steps and seed: ``uae`` (UM-InfoNCE on the utilities) and ``infonce_gold``
   (InfoNCE on the gold evidence), each with model selection on a dev split held out from its
   training questions (``uae.training.selection``: the best checkpoint is kept, and a student that does not
   beat the base encoder there is replaced by it); every setting not given on the command line is
   the library's default (``uae.config``), the one ``uae run`` and ``uae train`` use;
   ``--no-evidence`` trains ``uae`` from question-answer pairs alone (pools mined without the gold
   passages, rows chosen by utility, selection on the teacher's utility nDCG; the qrels are read
   only to evaluate), and ``--compare NAME=MODEL_DIR`` evaluates models of another run beside it
   (e.g. the evidence run's ``uae`` and ``infonce_gold``, on the same test questions);
4. evaluates on the ``--eval-split`` questions (``test``; ``dev`` for investigations, so nothing is
   tuned on test): ``bm25``, ``base``, ``uae``, ``infonce_gold``, the hybrids ``base+bm25`` and
   ``uae+bm25`` (dense and BM25 rankings fused by reciprocal rank fusion) and ``teacher_oracle`` (the teacher
   re-ranking the base top-20 *with the gold answer*: an oracle, not a deployable system), with
   recall@1/5/10, MRR, MAP, nDCG@10 and answer_recall@1/5, relative gains over ``base`` and paired
   t-tests.

Writes ``OUT/metrics.json``, ``OUT/comparison.json``, ``OUT/report.md`` with plots, ``OUT/bench.json``
(the data, settings and stage times of the run), appends a dated section to ``BENCHMARKS.md``
and ends with a ``RESULT:`` line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED_DATA, append_benchmarks, command_line, describe_machine, machine, result_line, section_heading  # noqa: E402

QUICK = {"dataset": "squad-v1.1", "data_dir": str(SHARED_DATA / "squad"), "options": ["scoped=true"], "train_limit": 32,
         "eval_limit": 60, "documents_limit": 4, "pool_size": 8, "train_pool_size": 3, "steps": 4, "batch_size": 4,
         "eval_every": 2}
"""The quick run's sizes; everything else is the library's default, as in a full run."""
SYSTEMS = ("bm25", "base", "uae", "infonce_gold", "base+bm25", "uae+bm25", "teacher_oracle")
"""``NAME+bm25``: the dense ranking of NAME fused with BM25's by reciprocal rank fusion (``--no-hybrid``: left out)."""
SELECTION_WORDS = {"gold_first": "the gold evidence first, then the best-ranked passages",
                   "rank": "the best-ranked passages only (gold flags ignored)",
                   "utility_first": "the teacher's most useful passage first, then the best-ranked (gold flags ignored)"}
HEADLINE = ("recall@1", "hit_rate@1", "map", "ndcg@10", "answer_recall@1")


# --- data: load, split by document, limit -------------------------------------------------------


def load_split_dataset(name: str, data_dir: str, options: dict, seed: int = 13, keep_splits: bool = False):
    """Load ``name`` from ``data_dir`` and split it by document; returns ``(dataset, skipped, split_note)``.

    Registry datasets are re-split by document with :func:`uae.data.splits.split_by_document`
    (their official splits, where they exist, may share documents, e.g. QED's train and dev
    pages, and most have no dev split) unless ``keep_splits``; ``beir`` keeps its own
    ``qrels/train.tsv`` and ``qrels/test.tsv`` when it has both, and is split by document otherwise.
    """
    from uae.data.loaders import load
    from uae.data.splits import split_by_document

    loaded = load(name, data_dir, **options)
    dataset = loaded.dataset
    if {"train", "test"} <= set(dataset.qrels) and (name == "beir" or keep_splits):
        return dataset, loaded.skipped, "the source's own train/test splits (checked: no document in both)"
    dataset = split_by_document(dataset, seed=seed)
    note = f"split by document (split_by_document: train 0.6 / dev 0.1 / test 0.3 of the documents, seed {seed})"
    return dataset, loaded.skipped, note


def split_documents(dataset, split: str) -> set[str]:
    """The documents (see :func:`uae.data.splits.query_documents`) of the questions of ``split``."""
    from uae.data.splits import query_documents

    documents = query_documents(dataset)
    return {documents[qid] for qid in dataset.qrels.get(split, {})}


def check_disjoint(dataset, first: str = "train", second: str = "test") -> None:
    """Refuse a dataset whose ``first`` and ``second`` splits share a document."""
    shared = split_documents(dataset, first) & split_documents(dataset, second)
    if shared:
        raise SystemExit(f"{dataset.name}: {len(shared)} documents have questions in both {first} and {second} "
                         f"(e.g. {sorted(shared)[:3]}); run without --keep-splits to split by document")


def limit_split(dataset, split: str, limit: int | None, seed: int, documents_limit: int | None = None):
    """Keep a seeded random sample of ``limit`` usable questions of ``split`` (all when ``None``).

    ``documents_limit`` first keeps the questions of that many randomly chosen documents (the
    quick run uses it to keep the corpus small). Questions without an answer or relevant passage
    are dropped here too; they are counted in the returned number of unusable questions.
    """
    from uae.data.splits import query_documents

    usable, skipped = dataset.usable_queries(split)
    ids = [q.id for q in usable]
    rng = random.Random(f"{seed}:{split}")
    if documents_limit is not None:
        documents = query_documents(dataset)
        chosen = sorted({documents[qid] for qid in ids})
        rng.shuffle(chosen)
        keep = set(chosen[:documents_limit])
        ids = [qid for qid in ids if documents[qid] in keep]
    if limit is not None and limit < len(ids):
        ids = sorted(rng.sample(ids, limit), key=ids.index)
    qrels = {**dataset.qrels, split: {qid: dataset.qrels[split][qid] for qid in ids}}
    return dataclasses.replace(dataset, qrels=qrels), skipped.total


def trim_corpus(dataset, splits: Sequence[str]):
    """Keep the passages of the documents searched by the questions of ``splits``, when all are scoped.

    A scoped question searches only the passages of its ``doc_id``, so dropping the other
    documents changes no dense scoped search (BM25 and the Dirichlet teacher take their corpus
    statistics from the kept documents). Unscoped datasets are returned unchanged.
    """
    from uae.data.schema import Corpus

    queries = [dataset.queries[qid] for split in splits for qid in dataset.qrels.get(split, {})]
    if not queries or any(q.doc_id is None for q in queries):
        return dataset, False
    scopes = {q.doc_id for q in queries}
    corpus = Corpus(p for p in dataset.corpus if p.doc_id in scopes)
    qrels = {split: dataset.qrels[split] for split in splits if split in dataset.qrels}
    return dataclasses.replace(dataset, corpus=corpus, qrels=qrels), True


def prepare_data(args) -> tuple:
    """The dataset the pipeline runs on, and a description of it for the report."""
    from uae.data.loaders import dataset_stats
    from uae.data.loaders.prepare import parse_options

    options = parse_options(args.option)
    dataset, skipped, split_note = load_split_dataset(args.dataset, args.data_dir, options, args.seed, args.keep_splits)
    if args.eval_split not in dataset.qrels:
        raise SystemExit(f"{args.dataset}: no {args.eval_split} split (has {sorted(dataset.qrels)}); run without --keep-splits")
    splits = [s for s in ("train", "dev", "test") if s in dataset.qrels]
    for split in splits[1:]:
        check_disjoint(dataset, "train", split)
    full_sizes = {split: len(dataset.qrels[split]) for split in splits}
    unusable = {}
    for split in splits:  # the same sample whichever split is evaluated, so dev and test runs share mining, labels and models
        limit = args.train_limit if split == "train" else args.eval_limit
        dataset, unusable[split] = limit_split(dataset, split, limit, args.seed, args.documents_limit)
    dataset, trimmed = trim_corpus(dataset, splits)
    stats = dataset_stats(dataset)
    data = {
        "dataset": args.dataset,
        "source": args.data_dir,
        "options": options,
        "split": split_note,
        "questions_per_split_before_limits": full_sizes,
        "train_questions": len(dataset.qrels["train"]),
        "eval_questions": len(dataset.qrels[args.eval_split]),
        "eval_split": args.eval_split,
        "train_documents": len(split_documents(dataset, "train")),
        "eval_documents": len(split_documents(dataset, args.eval_split)),
        "limits": {"train": args.train_limit, "eval": args.eval_limit, "documents": args.documents_limit},
        "unusable_dropped": unusable,
        "scoped": stats["scoped_queries"] > 0,
        "corpus_trimmed_to_kept_documents": trimmed,
        "passages": stats["passages"],
        "passage_words_mean": stats["passage_words_mean"],
        "loader_skipped": skipped.to_dict(),
    }
    return dataset, data


# --- run ------------------------------------------------------------------------------------


def _given(args, names: dict[str, str]) -> dict:
    """``{config field: value}`` of the options given on the command line (``names``: field -> argument)."""
    return {field: getattr(args, name) for field, name in names.items() if getattr(args, name) is not None}


def run_config(args, data: dict):
    """The :class:`uae.config.RunConfig` of this run: the library's defaults, with what the command line gives."""
    from uae.config import EvalConfig, LabelingConfig, MiningConfig, RunConfig, SelectionConfig, TargetConfig, TrainingConfig

    training = _given(args, {name: name for name in ("steps", "batch_size", "train_pool_size", "max_seq_length", "tau_s", "hard_mix",
                                                    "learning_rate", "seed", "pool_selection", "max_gold", "multi_positive")})
    targets = _given(args, {name: name for name in ("tau_t", "normalize", "confidence", "confidence_quantile", "confident_utility", "gold", "gold_floor")})
    selection = _given(args, {"dev_fraction": "dev_fraction", "metric": "selection_metric", "eval_every": "eval_every",
                              "patience": "patience", "fallback": "fallback"})
    description = (f"{args.dataset}:{args.data_dir} {json.dumps(data['options'], sort_keys=True)} ({data['split']}; "
                   f"limits train {args.train_limit}, dev and test {args.eval_limit} each, documents {args.documents_limit}, seed {args.seed})")
    return RunConfig(
        data=description,
        out=str(args.out),
        base_model=args.base_model,
        evidence=not args.no_evidence,
        mining=MiningConfig(**_given(args, {"pool_size": "pool_size"})),
        labeling=LabelingConfig(teacher=args.teacher),
        targets=TargetConfig(**targets),
        training=TrainingConfig(**training),
        selection=SelectionConfig(**selection),
        eval=EvalConfig(split=args.eval_split, encode_scopes_only=True, hybrid=not args.no_hybrid),
    )


def target_diagnostics(config, train_qrels: dict[str, dict[str, int]]) -> dict:
    """How the teacher's training targets relate to the human evidence, from the run's own files.

    ``top_is_gold``: share of training rows whose highest-utility passage is a gold one;
    ``mean_top_target``: mean target probability of that passage at the run's ``tau_t`` (before the
    confidence and gold rules). When the first is near 1 and the second too, UM-InfoNCE is close to
    InfoNCE on the gold evidence. Gold is read from ``train_qrels`` after training (a no-evidence
    run's pools hold no gold flags; its training never saw these qrels).
    """
    from uae.data.tables import read_pools
    from uae.labeling import read_labels
    from uae.targets import build_targets, utilities_from_nlls
    from uae.training.rows import select_pool

    utilities, _ = utilities_from_nlls(read_labels(config.out_dir / "labels"), config.labeling.aggregate)
    pools = read_pools(config.out_dir / "pools.parquet")
    size = config.training.train_pool_size or config.mining.pool_size
    rows = {qid: select_pool(pool, size, config.training.pool_selection, utilities.get(qid), config.training.max_gold)
            for qid, pool in pools.items() if qid in utilities}
    targets, _ = build_targets(utilities, {qid: [c.passage_id for c in row] for qid, row in rows.items()}, config.targets)
    top = {qid: int(np.argmax(target)) for qid, target in targets.items()}
    return {
        "rows": len(targets),
        "top_is_gold": round(float(np.mean([train_qrels.get(qid, {}).get(rows[qid][i].passage_id, 0) > 0
                                            for qid, i in top.items()])), 4),
        "mean_top_target": round(float(np.mean([targets[qid][i] for qid, i in top.items()])), 4),
    }


def read_comparison(path: Path):
    """The :class:`uae.evaluation.Comparison` that ``stage_eval`` wrote to ``comparison.json``."""
    from uae.evaluation import Comparison, MetricResult

    raw = json.loads(path.read_text(encoding="utf-8"))
    results = {s: {m: MetricResult(**r) for m, r in row.items()} for s, row in raw.pop("results").items()}
    return Comparison(results=results, **raw)


def training_seconds_per_step(out: Path, name: str) -> float | None:
    """Mean wall seconds per optimisation step of ``models/<name>``, from the trainer's log."""
    from uae.training.trainer import read_training_log

    log = read_training_log(out / "models" / name)
    final = next((e for e in reversed(log) if "train_runtime" in e), None)
    return final["train_runtime"] / final["step"] if final and final.get("step") else None


def training_records(out: Path, names) -> dict[str, dict]:
    """``uae_training.json`` of each trained model of the run."""
    return {name: json.loads((out / "models" / name / "uae_training.json").read_text(encoding="utf-8"))
            for name in names if (out / "models" / name / "uae_training.json").is_file()}


def selection_lines(records: dict[str, dict]) -> list[str]:
    """One line per trained model: what model selection on its dev split decided."""
    lines = []
    for name, record in records.items():
        selection = record.get("selection") or {}
        verdict = selection.get("verdict") or f"no model selection ({selection.get('reason', 'no dev split')})"
        rules = record.get("target_rules") or {}
        changed, threshold = rules.get("rows_changed"), rules.get("confidence_threshold")
        rules_text = (f"; target rules changed rows: {changed or 'none'}"
                      f"{f' (confidence threshold {threshold:.3g} nats/token)' if threshold else ''}") if rules else ""
        lines.append(f"Model selection, `{name}`: {verdict}{rules_text}; skipped: {record.get('skipped') or 'nothing'}.  ")
    return lines


def section(args, command: str, info: dict, data: dict, config, result, comparison, teacher_kind: str, diagnostics: dict) -> str:
    from uae.evaluation import format_table

    systems = [*SYSTEMS, *args.compare_models]
    metrics = {s: result.metrics[s] for s in systems if s in result.metrics}
    t, g = config.training, config.targets
    records = training_records(config.out_dir, ("uae", "infonce_gold"))
    step_seconds = {name: training_seconds_per_step(config.out_dir, name) for name in records}
    timings = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in result.timings.items())
    per_step = ", ".join(f"{name} {s:.1f} s/step" for name, s in step_seconds.items() if s)
    mode = "no evidence labels (question-answer pairs alone)" if not config.evidence else "evidence labels"
    lines = [
        section_heading(f"Quality: {args.dataset}, {args.eval_split} split, teacher `{args.teacher}`, {mode} (bench/quality.py)", args.quick),
        "",
        f"Command: `{command}`  ",
        f"Machine: {describe_machine(info)}.  ",
        f"Teacher: `{args.teacher}`, {teacher_kind}; it labels the training pools and is the `teacher_oracle` re-ranker.  ",
        f"Data: `{args.dataset}` from `{args.data_dir}`, loader options {json.dumps(data['options'])}; {data['split']}. "
        f"Questions per split before the limits: {data['questions_per_split_before_limits']}. Used: {data['train_questions']} train "
        f"questions ({data['train_documents']} documents) and {data['eval_questions']} {args.eval_split} questions "
        f"({data['eval_documents']} documents); limits: train {args.train_limit}, dev and test {args.eval_limit} each, "
        f"documents {args.documents_limit} (seeded random samples, seed {args.seed}). "
        f"{'Scoped retrieval: each question searches only its own document. ' if data['scoped'] else 'Corpus-wide retrieval. '}"
        f"Corpus: {data['passages']} passages ({data['passage_words_mean']} words on average)"
        f"{', cut to the documents of the kept questions' if data['corpus_trimmed_to_kept_documents'] else ''}. "
        f"Left out by the loader: {data['loader_skipped'] or 'nothing'}.  ",
        f"Training ({', '.join(records) or 'no model'}: same base `{config.base_model}`, pools, dev split, steps and seed; "
        f"the library defaults unless the command sets them): up to {t.steps} steps of {t.batch_size} questions x "
        f"{t.train_pool_size} pool passages (from pools of {config.mining.pool_size}{'' if config.mining.include_gold else ', mined without the gold passages'}), "
        f"at most {t.max_gold} gold passage(s) per row, max_seq_length {t.max_seq_length}, lr {t.learning_rate}, tau_s {t.tau_s}; "
        f"UM-InfoNCE targets: tau_t {g.tau_t}, normalize {g.normalize}, hard_mix {t.hard_mix}, confidence rule {g.confidence} "
        f"(threshold: {f'{g.confident_utility} nats/token' if g.confident_utility else f'the {g.confidence_quantile:.0%} quantile of the best utilities'}), "
        f"gold rule {g.gold}; uae rows keep {SELECTION_WORDS[t.pool_selection]}. "
        f"Model selection: {config.selection.dev_fraction:.0%} of the training questions (at least {config.selection.min_dev_questions} "
        f"where the data allows) held out by document, scored every {config.selection.eval_every} steps on `{config.selection.metric}`, "
        f"patience {config.selection.patience}, fallback `{config.selection.fallback}`. Texts are cut to max_seq_length in training "
        "only; every encoder searches with the base encoder's length.  ",
        *selection_lines(records),
        f"Targets against the evidence: in {diagnostics['top_is_gold']:.1%} of the {diagnostics['rows']} uae training rows the "
        f"teacher's most useful passage is a gold one, and it gets {diagnostics['mean_top_target']:.3f} of the target on average.  ",
        *([f"Compared models from other runs: {', '.join(f'`{n}` = `{p}`' for n, p in args.compare_models.items())}.  "]
          if args.compare_models else []),
        f"Wall time: {result.seconds:.0f} s ({timings}; mine includes encoding the corpus with the base encoder; a stage "
        f"that an earlier run in the same folder finished with the same inputs is reused and takes seconds; training "
        f"{per_step}).  ",
        f"Report: `{os.path.relpath(config.out_dir / 'report.md', ROOT)}`.",
        "",
        format_table(metrics, comparison).rstrip(),
        "",
        "`teacher_oracle` reads the gold answer: an upper bound, not a deployable system. `hit_rate@1`: the top passage is "
        "a gold one (recall@1 is capped at 1/|gold| when a question has several). "
        "`answer_recall@k`: does the top-k text hold a gold answer (only meaningful for extractive answers).",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="SQuAD v1.1 scoped, a few documents, tiny limits and steps (< 2 min quiet)")
    parser.add_argument("--dataset", help="a registry name (uae data list) or 'beir' for a BEIR folder with answers")
    parser.add_argument("--data-dir", help="the dataset's raw files (a file or folder), or the BEIR folder")
    parser.add_argument("-o", "--option", action="append", default=[], help="loader option KEY=VALUE, e.g. scoped=true (repeatable)")
    parser.add_argument("--keep-splits", action="store_true", help="use the source's train/test splits instead of re-splitting by document")
    parser.add_argument("--train-limit", type=int, help="train questions kept (seeded random sample)")
    parser.add_argument("--eval-limit", type=int, help="evaluation questions kept (seeded random sample)")
    parser.add_argument("--documents-limit", type=int, help="keep the questions of this many random documents per split first")
    parser.add_argument("--eval-split", default="test", choices=("test", "dev"), help="dev for investigations; test for the reported runs")
    parser.add_argument("--teacher", default="dirichlet", help="labels and oracle: dirichlet | dirichlet:mu=N | hf:<model> | ...")
    parser.add_argument("--base-model", default="minilm")
    parser.add_argument("--out", type=Path, help="run folder (default runs/quality-<dataset>[-quick])")
    parser.add_argument("--no-evidence", action="store_true", help="train uae from question-answer pairs alone (qrels read only to evaluate)")
    parser.add_argument("--no-hybrid", action="store_true", help="leave out the base+bm25 and uae+bm25 systems")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=MODEL_DIR",
                        help="evaluate another run's model beside this run's systems (repeatable)")
    group = parser.add_argument_group("settings (default: the library's, as in `uae run`)")
    group.add_argument("--seed", type=int, default=13)
    group.add_argument("--pool-size", type=int, help="mined pool per question")
    group.add_argument("--train-pool-size", type=int, help="pool passages per question in training")
    group.add_argument("--steps", type=int, help="optimisation steps per model (the most)")
    group.add_argument("--batch-size", type=int, help="questions per step")
    group.add_argument("--max-seq-length", type=int, help="tokens per text in training")
    group.add_argument("--learning-rate", type=float)
    group.add_argument("--tau-t", type=float, help="teacher temperature of the target softmax")
    group.add_argument("--tau-s", type=float, help="student temperature")
    group.add_argument("--normalize", choices=("none", "zscore"), help="per-query normalisation of utilities")
    group.add_argument("--confidence", choices=("none", "skip", "weight", "soften"), help="queries whose best passage barely helps")
    group.add_argument("--confidence-quantile", type=float, help="the confidence threshold: this quantile of the best utilities")
    group.add_argument("--confident-utility", type=float, help="a fixed confidence threshold (nats per answer token)")
    group.add_argument("--gold", choices=("mask", "floor", "none"), help="gold passages the teacher finds useless")
    group.add_argument("--gold-floor", type=float, help="the floor rule's share of the target")
    group.add_argument("--hard-mix", type=float, help="weight of hard InfoNCE on the top-utility passage")
    group.add_argument("--pool-selection", choices=tuple(SELECTION_WORDS), help="which pool passages a uae training row keeps")
    group.add_argument("--max-gold", type=int, help="gold_first rows: the most gold passages a row keeps")
    group.add_argument("--multi-positive", choices=("spread", "mask"), help="infonce_gold with several gold passages in a row")
    group.add_argument("--dev-fraction", type=float, help="share of the training questions held out for model selection (0: off)")
    group.add_argument("--selection-metric", choices=("auto", "evidence", "answer", "utility"))
    group.add_argument("--eval-every", type=int, help="steps between dev evaluations")
    group.add_argument("--patience", type=int, help="dev evaluations without improvement before stopping")
    group.add_argument("--fallback", choices=("base", "student"), help="when the student does not beat the base on dev")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if key == "options":
                args.option = args.option or list(value)
            elif getattr(args, key, None) is None:
                setattr(args, key, value)
    if not args.dataset or not args.data_dir:
        parser.error("--dataset and --data-dir are required (or --quick)")
    args.compare_models = {}
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            parser.error(f"--compare expects NAME=MODEL_DIR with an existing folder, got {item!r}")
        args.compare_models[name] = Path(path)
    if args.out is None:
        args.out = ROOT / "runs" / f"quality-{args.dataset.replace('/', '-')}{'-quick' if args.quick else ''}"
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from uae.pipeline import run_pipeline
    from uae.teachers import load_teacher

    command = command_line(__file__, sys.argv[1:] if argv is None else argv)
    info = machine()
    print(f"command: {command}")
    print(f"machine: {describe_machine(info)}")
    started = time.perf_counter()
    dataset, data = prepare_data(args)
    print(f"data: {json.dumps(data)} (prepared in {time.perf_counter() - started:.0f} s)")
    config = run_config(args, data)
    result = run_pipeline(config, progress=not args.no_progress, dataset=dataset, extra_models=args.compare_models)
    comparison = read_comparison(config.out_dir / "comparison.json")
    teacher_kind = load_teacher(args.teacher).describe().get("kind", "language model")
    diagnostics = target_diagnostics(config, dataset.qrels["train"])
    (config.out_dir / "bench.json").write_text(json.dumps(
        {"command": command, "machine": info, "data": data, "seconds": result.seconds, "timings": result.timings,
         "targets_vs_evidence": diagnostics}, indent=2, default=str))
    text = section(args, command, info, data, config, result, comparison, teacher_kind, diagnostics)
    print(text)
    if not args.no_write:
        append_benchmarks(text)
    figures = {}
    for metric in HEADLINE:
        for system in ("base", "uae", "infonce_gold", "base+bm25", "uae+bm25", *args.compare_models):
            if metric in result.metrics.get(system, {}):
                figures[f"{system} {metric}"] = result.metrics[system][metric]
    label = (f"quality {args.dataset}{' (quick)' if args.quick else ''}, {data['eval_questions']} {args.eval_split} questions, "
             f"teacher {args.teacher}")
    print(result_line(label, figures))
    return result.metrics


if __name__ == "__main__":
    main()
