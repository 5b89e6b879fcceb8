"""The cross-teacher test: train on teacher A's utilities, judge by a held-out teacher B (and by humans).

For every teacher given, a student (the base encoder fine-tuned with UM-InfoNCE on that teacher's
utility targets) is trained on the same SQuAD questions and pools; one more student learns from
all teachers at once (``--mix``: ``mean_distribution`` or ``mean_zscore`` of their utilities,
equal weights), and three references stand beside them: BM25, the base encoder zero-shot and the
encoder fine-tuned with plain InfoNCE on the human gold paragraph. Every system is then scored on
held-out test questions (other SQuAD articles) against every teacher's judgement, pooled as TREC
does (``uae.evaluation.cross_teacher.judge_pooled_runs``): per test question, the union of every system's
top-``--pool-depth`` passages (default 10, the deepest cut-off measured, so no system's top 10
holds an unjudged passage) is labelled by the judging teacher, and the report says how many
judged passages each system contributed and how many only it did. On those judgements:

- nDCG@10 on graded qrels built from that teacher's utilities (``uae.evaluation.cross_teacher.graded_qrels``:
  within-query quantiles of the positive utilities, grades 0..3), retrieval over the whole
  corpus; ``*``: paired t-test p < 0.05 against the base encoder on the same queries;
- utility nDCG@10 (gains = the teacher's positive utilities themselves);
- Kendall's tau-b between each system's scores (cosine; BM25 score) and the teacher's utilities
  over each test query's judged pool;

and against human evidence (nDCG@10 and Recall@1 on the gold paragraph). The diagonal (judged by
its own teacher) against the off-diagonal (judged by a held-out teacher) is the test.

Offline, the teachers available here are NOT LLMs: ``dirichlet:mu=N`` is a Dirichlet-smoothed
document language model (different smoothing = different teacher), and ``tiny-gpt2`` /
``tiny-llama`` are 2-layer causal LMs at *random weights* built from a config (their utilities are
noise). So an offline run tests the machinery, not the science. With a GPU and the models in the
Hugging Face cache, the real test is (two model families as teachers)::

    python bench/cross_teacher.py \\
        --teachers hf:Qwen/Qwen2.5-1.5B-Instruct,hf:meta-llama/Llama-3.2-1B-Instruct \\
        --articles 24 --train-questions 2000 --test-questions 500 --pool-size 16 --steps 300 --batch-size 16

Data: SQuAD v1.1 dev, first half (``squad/squad-v1.1-dev-part1.json`` under the shared data beside
the checkout, ``bench/common.py``'s ``SHARED_DATA``; 24 articles), split by article into train and
test; ``--articles`` keeps the first N articles (sorted by title) as the corpus. Only the training
questions' mined pools are labelled for training; the test questions are judged on the pooled runs.
Work is saved under ``--work`` in a folder named by the settings' hash (pools, labels, models,
judgements), so a rerun with the same settings resumes.

    python bench/cross_teacher.py --quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED_DATA, append_benchmarks, command_line, describe_machine, machine, section_heading  # noqa: E402

from uae.evaluation.cross_teacher import DEFAULT_POOL_DEPTH  # noqa: E402

SQUAD = SHARED_DATA / "squad" / "squad-v1.1-dev-part1.json"
RUN_DEPTH = 100
"""Passages per query in the runs the metrics read."""
TINY_MODELS = ("tiny-gpt2", "tiny-llama")
REUSED: list[str] = []
"""What this run took from an earlier run with the same settings (said in the report: wall time excludes it)."""
QUICK = {"articles": 3, "train_questions": 32, "test_questions": 24, "pool_size": 4, "steps": 3, "batch_size": 4,
         "max_seq_length": 64, "eval_seq_length": 128, "teachers": "dirichlet:mu=100,dirichlet:mu=2000"}
FULL = {"articles": 12, "train_questions": 300, "test_questions": 200, "pool_size": 6, "steps": 24, "batch_size": 8,
        "max_seq_length": 96, "eval_seq_length": 256, "teachers": "dirichlet:mu=100,dirichlet:mu=2000,tiny-gpt2"}


# ---- set-up --------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Cross-teacher matrix: train on teacher A, judge by teacher B.")
    parser.add_argument("--quick", action="store_true", help="a small configuration of the same code path (< 2 minutes idle)")
    parser.add_argument("--data", type=Path, default=SQUAD, help="a SQuAD v1.1 JSON file")
    parser.add_argument("--teachers", help="comma-separated teacher specs (dirichlet:mu=N, hf:<model>, tiny-gpt2, tiny-llama)")
    parser.add_argument("--mix", default="mean_zscore", choices=["mean_distribution", "mean_zscore", "none"],
                        help="the multi-teacher student's combination (none: no such student)")
    parser.add_argument("--articles", type=int, help="articles kept as the corpus")
    parser.add_argument("--train-questions", type=int)
    parser.add_argument("--test-questions", type=int)
    parser.add_argument("--pool-size", type=int)
    parser.add_argument("--steps", type=int, help="training steps per student")
    parser.add_argument("--batch-size", type=int, help="queries per step")
    parser.add_argument("--max-seq-length", type=int, help="tokens per text in training")
    parser.add_argument("--eval-seq-length", type=int, help="tokens per text in mining and evaluation, the same for every model")
    parser.add_argument("--tau-t", type=float, default=1.0, help="teacher temperature (utilities z-normalised per query)")
    parser.add_argument("--base-model", default="minilm")
    parser.add_argument("--grades", type=int, default=3, help="G of the graded qrels")
    parser.add_argument("--pool-depth", type=int, default=DEFAULT_POOL_DEPTH,
                        help="each system's top-k that the judging teachers label (TREC pooling)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_cross_teacher")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.teacher_specs = [t.strip() for t in args.teachers.split(",") if t.strip()]
    if len(args.teacher_specs) < 2:
        parser.error("the cross-teacher test needs at least two teachers")
    if args.pool_depth < 1:
        parser.error("--pool-depth must be at least 1")
    return args


def settings_key(args: argparse.Namespace) -> str:
    keys = ("data", "teacher_specs", "mix", "articles", "train_questions", "test_questions", "pool_size", "steps", "batch_size",
            "max_seq_length", "eval_seq_length", "tau_t", "base_model", "seed")
    payload = json.dumps({k: getattr(args, k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def build_tiny_lm(kind: str, folder: Path) -> Path:
    """A 2-layer random causal LM (GPT-2 or Llama) with the packaged MiniLM tokenizer, context 512."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from uae.retrieval.encoders import packaged_minilm_path

    if (folder / "config.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path(), local_files_only=True)
    torch.manual_seed(0)
    if kind == "tiny-gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=512, vocab_size=len(tokenizer),
                                           bos_token_id=None, eos_token_id=None, pad_token_id=tokenizer.pad_token_id))
    else:
        model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, hidden_size=32,
                                             intermediate_size=64, max_position_embeddings=512, vocab_size=len(tokenizer),
                                             bos_token_id=None, eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def teacher_label(spec: str) -> str:
    """How a teacher is named in the tables, with what it is."""
    if spec.startswith("dirichlet"):
        return f"{spec} (Dirichlet document LM, not an LLM)"
    if spec in TINY_MODELS:
        return f"{spec} (2-layer LM at random weights: noise, not an LLM)"
    return f"{spec} (LLM)"


@dataclass
class Setup:
    """The dataset cut for the bench and its query lists."""

    dataset: object
    train: list
    test: list
    skipped: dict = field(default_factory=dict)


def build_setup(args: argparse.Namespace) -> Setup:
    """First ``articles`` articles of SQuAD, split by article (half train, half test), questions sampled."""
    from uae.data.loaders import load
    from uae.data.schema import Corpus, Dataset
    from uae.data.splits import split_by_document

    loaded = load("squad-v1.1", args.data)
    full = loaded.dataset
    titles = sorted({p.doc_id for p in full.corpus})[: args.articles]
    corpus = Corpus(p for p in full.corpus if p.doc_id in titles)
    qrels = {qid: judged for split in full.qrels.values() for qid, judged in split.items()
             if all(pid in corpus for pid in judged)}
    queries = {qid: full.queries[qid] for qid in qrels}  # unscoped: retrieval is corpus-wide
    dataset = split_by_document(Dataset("squad-v1.1", corpus, queries, {"all": qrels}), {"train": 0.5, "test": 0.5}, seed=args.seed)
    rng = random.Random(args.seed)
    train, test = dataset.usable_queries("train")[0], dataset.usable_queries("test")[0]
    train = rng.sample(train, min(args.train_questions, len(train)))
    test = rng.sample(test, min(args.test_questions, len(test)))
    return Setup(dataset, train, test, loaded.skipped.to_dict())


# ---- the stages ------------------------------------------------------------------------------


def mine(setup: Setup, args: argparse.Namespace, work: Path):
    """Pools of the training questions (BM25 + the base encoder, RRF, gold kept): what the teachers label for training."""
    from uae.data.tables import read_pools, write_pools
    from uae.retrieval.mining import mine_pools
    from uae.retrieval.retriever import Retriever

    path = work / "train-pools.parquet"
    if path.is_file():
        REUSED.append("pools")
        return read_pools(path)
    retriever = Retriever.build(args.base_model, setup.dataset.corpus, args.eval_seq_length, progress=False)
    pools = mine_pools(setup.dataset, setup.train, retriever, args.pool_size, 50, True, progress=False)
    write_pools(pools, path)
    return pools


def resolve_teacher(spec: str, work: Path):
    """The teacher a spec names; a tiny random LM is built under ``work`` first."""
    from uae.teachers import load_teacher

    return load_teacher(f"hf:{build_tiny_lm(spec, work / spec)}" if spec in TINY_MODELS else spec)


def folder_name(spec: str) -> str:
    return spec.replace("/", "_").replace(":", "_")


def label(setup: Setup, pools, args: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    """``({teacher: utilities of the training pools}, {teacher: seconds})``, labels saved per teacher (resumable)."""
    from uae.labeling import label_pools
    from uae.targets.utilities import utilities_from_labels

    utilities, seconds = {}, {}
    for spec in args.teacher_specs:
        folder = work / "train-labels" / folder_name(spec)
        started = time.perf_counter()
        summary = label_pools(setup.train, pools, setup.dataset.corpus, resolve_teacher(spec, work), folder, 64, progress=False)
        seconds[spec] = time.perf_counter() - started
        if summary.parts_reused:
            REUSED.append(f"training labels of {spec} ({summary.parts_reused} parts)")
        utilities[spec], skipped = utilities_from_labels(folder, "mean")
        skipped.merge(summary.skipped)
        print(f"  labels {spec}: {summary.pairs} pairs, {summary.truncated} truncated, {seconds[spec]:.0f} s, skipped {skipped.to_dict()}")
    return utilities, seconds


def train_students(setup: Setup, pools, utilities: dict, args: argparse.Namespace, work: Path) -> dict[str, str]:
    """``{student: model path}``: base, infonce_gold, one per teacher, and the mix."""
    from uae.config import TargetConfig
    from uae.targets.mixing import mixed_training_utilities

    targets = TargetConfig(tau_t=args.tau_t, normalize="zscore")
    students = {"base": args.base_model, "infonce_gold": _train(setup, pools, "gold", None, targets, "infonce_gold", args, work,
                                                                "human gold paragraph")}
    for spec in args.teacher_specs:
        students[f"on {spec}"] = _train(setup, pools, "distribution", utilities[spec], targets, "um_infonce", args, work, spec)
    if args.mix != "none":
        mixed, rows_targets, skipped = mixed_training_utilities(utilities, None, args.mix, targets)
        print(f"  mix ({args.mix}): skipped {skipped.to_dict()}")
        students[f"mix ({args.mix})"] = _train(setup, pools, "distribution", mixed, rows_targets, "um_infonce", args, work,
                                               f"{args.mix} of {', '.join(args.teacher_specs)}")
    return students


def _train(setup: Setup, pools, kind: str, utilities, targets, loss: str, args: argparse.Namespace, work: Path, teacher: str) -> str:
    from uae.config import TrainingConfig
    from uae.training.rows import build_training_rows
    from uae.training.trainer import train_model

    out = work / "models" / hashlib.sha256(teacher.encode()).hexdigest()[:10]
    if (out / "uae_training.json").is_file():
        REUSED.append(f"the student trained on {teacher}")
        return str(out)
    rows = build_training_rows(setup.train, pools, setup.dataset.corpus, kind, utilities, targets, args.pool_size, args.seed)
    config = TrainingConfig(loss=loss, steps=args.steps, batch_size=args.batch_size, max_seq_length=args.max_seq_length, seed=args.seed)
    started = time.perf_counter()
    train_model(rows, args.base_model, out, config, {"teacher": teacher, "targets": targets.model_dump()})
    print(f"  trained {loss} on {teacher}: {len(rows.queries)} queries, skipped {rows.skipped.to_dict()}, "
          f"{time.perf_counter() - started:.0f} s")
    return str(out)


def system_scores(setup: Setup, students: dict[str, str], args: argparse.Namespace) -> dict[str, dict]:
    """``{system: {query_id: {passage_id: score}}}`` over the whole corpus: BM25 and every student (cosine)."""
    from uae.evaluation.cross_teacher import student_scores
    from uae.retrieval.bm25 import BM25Index

    corpus = setup.dataset.corpus
    hits = BM25Index(corpus).search([q.text for q in setup.test], len(corpus), [q.doc_id for q in setup.test])
    scores = {"bm25": {q.id: {h.passage_id: h.score for h in query_hits} for q, query_hits in zip(setup.test, hits)}}
    for name, path in students.items():
        scores[name] = student_scores(path, setup.test, corpus, {}, len(corpus), max_seq_length=args.eval_seq_length)[0]
    return scores


def top(scores: dict, depth: int) -> dict:
    """Each query's ``depth`` best passages of a whole-corpus score table (the run the metrics read)."""
    from uae.evaluation import rank_passages

    return {qid: {pid: row[pid] for pid in rank_passages(row)[:depth]} for qid, row in scores.items()}


def judge(setup: Setup, runs: dict, args: argparse.Namespace, work: Path) -> dict:
    """``{teacher: PooledJudgement}``: every teacher labels the union of every system's top-``pool_depth``."""
    from uae.evaluation.cross_teacher import judge_pooled_runs, pooled_judgements

    pools = pooled_judgements(runs, args.pool_depth)
    digest = hashlib.sha256(json.dumps({q.id: [c.passage_id for c in pools.get(q.id, [])] for q in setup.test}).encode()).hexdigest()[:10]
    judgements = {}
    for spec in args.teacher_specs:
        folder = work / "judged" / f"{folder_name(spec)}-depth{args.pool_depth}-{digest}"
        judgements[spec] = judge_pooled_runs(runs, setup.test, setup.dataset.corpus, resolve_teacher(spec, work), folder,
                                             args.pool_depth, args.grades)
        summary = judgements[spec].labeling
        if summary.parts_reused:
            REUSED.append(f"judgements of {spec} ({summary.parts_reused} parts)")
        print(f"  judged by {spec}: {judgements[spec].judged} pooled passages of {len(judgements[spec].utilities)} queries, "
              f"{summary.seconds:.0f} s, skipped {judgements[spec].skipped.to_dict()}")
    return judgements


def measure(setup: Setup, judgements: dict, runs: dict, scores: dict, args: argparse.Namespace) -> dict:
    """Every measure of every system against every judge and against human evidence."""
    from uae.evaluation import compare, evaluate
    from uae.evaluation.cross_teacher import mean, pool_kendall_tau, teacher_agreement, utility_ndcg

    human = {q.id: setup.dataset.qrels["test"][q.id] for q in setup.test}
    result = {"depth": args.pool_depth, "human": evaluate(human, runs, ["ndcg@10", "recall@1"]), "judges": {}, "agreement": {},
              "top1_gold": {}}
    for name, judgement in judgements.items():
        held = judgement.utilities
        comparison = compare(judgement.qrels, runs, baseline="base", metrics=["ndcg@10", "mrr"])
        result["judges"][name] = {
            "queries": comparison.n_queries,
            "no_positive": judgement.no_positive.total,
            "pool": judgement.summary(),
            "ndcg": {s: comparison.results[s]["ndcg@10"] for s in runs},
            "utility_ndcg": {s: mean(utility_ndcg(run, held, 10)) for s, run in runs.items()},
            "tau": {s: mean(pool_kendall_tau(scores[s], held)[0]) for s in runs},
        }
        result["top1_gold"][name] = mean([float(human[q].get(max(row, key=row.get), 0) > 0) for q, row in held.items()])
        result["agreement"][name] = {other: mean(teacher_agreement(held, judgements[other].utilities)[0]) for other in judgements}
    return result


def evaluate_systems(setup: Setup, students: dict[str, str], args: argparse.Namespace, work: Path) -> dict:
    """Score every system, judge the pooled runs with every teacher, measure."""
    scores = system_scores(setup, students, args)
    runs = {name: top(table, RUN_DEPTH) for name, table in scores.items()}
    return measure(setup, judge(setup, runs, args, work), runs, scores, args)


# ---- the report ------------------------------------------------------------------------------


def cell(result) -> str:
    return f"{result.mean:.4f}{'*' if result.significant else ''}"


def tables(result: dict, systems: list[str], teachers: list[str]) -> list[str]:
    head = "| system (trained on) | " + " | ".join(f"judged by {t}" for t in teachers)
    lines = [f"**nDCG@10 on graded qrels from each teacher's utilities over the pooled top-{result['depth']} of every system** "
             "(retrieval over the whole corpus; `*`: paired t-test p < 0.05 against `base`), and against human evidence:", "",
             head + " | human nDCG@10 | human R@1 |", "|---" * (len(teachers) + 3) + "|"]
    for s in systems:
        row = " | ".join(cell(result["judges"][t]["ndcg"][s]) for t in teachers)
        lines.append(f"| {s} | {row} | {result['human'][s]['ndcg@10']:.4f} | {result['human'][s]['recall@1']:.4f} |")
    counts = ", ".join(f"{t}: {result['judges'][t]['queries']} ({result['judges'][t]['no_positive']} without a helpful passage)"
                       for t in teachers)
    lines += ["", f"Test queries judged per teacher: {counts}.", ""]
    lines += pool_table(result, systems, teachers)
    for key, title in (("tau", "Kendall tau-b between each system's score and the teacher's utility over each judged pool "
                               "(mean over queries)"),
                       ("utility_ndcg", "utility nDCG@10 (gains = the teacher's positive utilities over the judged pool)")):
        lines += [f"**{title}:**", "", head + " |", "|---" * (len(teachers) + 1) + "|"]
        lines += [f"| {s} | " + " | ".join(f"{result['judges'][t][key][s]:.4f}" for t in teachers) + " |" for s in systems]
        lines.append("")
    lines += ["**Teachers against each other and against humans** (Kendall tau-b between utilities over the judged pools; "
              "top-1 = gold: share of test queries whose highest-utility judged passage is the human gold paragraph):", "",
              "| teacher | " + " | ".join(teachers) + " | top-1 = gold |", "|---" * (len(teachers) + 2) + "|"]
    lines += [f"| {t} | " + " | ".join(f"{result['agreement'][t][o]:.3f}" for o in teachers) + f" | {result['top1_gold'][t]:.3f} |"
              for t in teachers]
    return lines


def pool_table(result: dict, systems: list[str], teachers: list[str]) -> list[str]:
    """The judged pool: depth, size, and per system the judged passages it contributed (and only it)."""
    pools = {t: result["judges"][t]["pool"] for t in teachers}
    sizes = ", ".join(f"{t}: {p['judged']} passages of {p['queries']} queries" for t, p in pools.items())
    lines = [f"**Judged pool** (TREC pooling: the union of every system's top-{result['depth']} per test query, labelled by "
             f"each teacher; {sizes}). Contributed: judged passages in the system's top-{result['depth']}; unique: those in no "
             "other system's:", "",
             "| system | " + " | ".join(f"{t}: contributed | unique" for t in teachers) + " |", "|---" * (2 * len(teachers) + 1) + "|"]
    for s in systems:
        cells = " | ".join(f"{pools[t]['contributions'][s]['contributed']} | {pools[t]['contributions'][s]['unique']}" for t in teachers)
        lines.append(f"| {s} | {cells} |")
    return lines + [""]


def headline(result: dict, teachers: list[str], students: list[str]) -> str:
    own = [result["judges"][t]["ndcg"][f"on {t}"].mean for t in teachers]
    held = [result["judges"][b]["ndcg"][f"on {a}"].mean for a in teachers for b in teachers if a != b]
    base = [result["judges"][t]["ndcg"]["base"].mean for t in teachers]
    mix = [s for s in students if s.startswith("mix")]
    parts = [f"teacher-judged nDCG@10 (pool depth {result['depth']}) own-teacher {sum(own) / len(own):.4f}, "
             f"held-out-teacher {sum(held) / len(held):.4f}, base {sum(base) / len(base):.4f}"]
    if mix:
        parts.append(f"mix {sum(result['judges'][t]['ndcg'][mix[0]].mean for t in teachers) / len(teachers):.4f}")
    parts.append("human nDCG@10 " + ", ".join(f"{s} {result['human'][s]['ndcg@10']:.4f}" for s in students))
    return "; ".join(parts)


def report(args, command: str, info: dict, setup: Setup, label_seconds: dict, result: dict, systems: list[str], seconds: float) -> str:
    teachers = args.teacher_specs
    offline = all(t.startswith("dirichlet") or t in TINY_MODELS for t in teachers)
    judge_seconds = {t: result["judges"][t]["pool"]["seconds"] for t in teachers}
    lines = [
        "\n" + section_heading("Cross-teacher test (bench/cross_teacher.py)", args.quick) + "\n",
        f"Command: `{command}`  ",
        f"Machine: {describe_machine(info)}. Wall time {seconds:.0f} s"
        + (f", resuming an earlier run of the same settings (reused: {'; '.join(REUSED)}).  " if REUSED else ", every stage run afresh.  "),
        "Teachers: " + "; ".join(teacher_label(t) for t in teachers) + ".  ",
    ]
    if offline:
        lines.append("**These teachers are not LLMs, so this matrix tests the machinery, not the science**: the Dirichlet "
                     "teachers are one classical document LM at two smoothings (they largely agree by construction), and a "
                     "random-weight LM's utilities are noise. The real test needs two LLM families; see the command below.  ")
    n_passages = len(setup.dataset.corpus)
    lines += [
        f"Data: SQuAD v1.1 dev part 1, first {args.articles} articles ({n_passages} paragraphs = the corpus), split by article; "
        f"{len(setup.train)} train and {len(setup.test)} test questions (sampled, seed {args.seed}). Training pools: {args.pool_size} "
        f"passages per question (BM25 + `{args.base_model}`, RRF, gold kept). Students: `{args.base_model}` + UM-InfoNCE "
        f"(z-normalised utilities, tau_t {args.tau_t}, tau_s 0.05), {args.steps} steps of {args.batch_size} questions, "
        f"max_seq_length {args.max_seq_length} in training, {args.eval_seq_length} for every model in mining and evaluation; "
        f"`infonce_gold`: plain InfoNCE on the gold paragraph, same steps; `mix`: {args.mix} of all teachers, equal weights. "
        f"Judging: each teacher labels the union of every system's top-{args.pool_depth} per test question (pool depth "
        f"{args.pool_depth}: the deepest cut-off measured, so no system's top 10 holds an unjudged passage); graded qrels: "
        f"within-query quantiles, grades 0..{args.grades}.  ",
        "Labeling time (training pools): " + ", ".join(f"{t} {s:.0f} s" for t, s in label_seconds.items())
        + "; judging time (pooled test runs): " + ", ".join(f"{t} {s:.0f} s" for t, s in judge_seconds.items()) + ".\n",
        *tables(result, systems, teachers),
        "",
        "Real test with two LLM families (GPU; models in the Hugging Face cache), not run here:  ",
        "`python bench/cross_teacher.py --teachers hf:Qwen/Qwen2.5-1.5B-Instruct,hf:meta-llama/Llama-3.2-1B-Instruct "
        "--articles 24 --train-questions 2000 --test-questions 500 --pool-size 16 --steps 300 --batch-size 16`",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    command = command_line(__file__)
    info = machine()
    print(f"command: {command}")
    print(f"machine: {describe_machine(info)}")
    if not args.data.is_file():
        print(f"RESULT: cross-teacher: skipped, {args.data} not found")
        return
    work = args.work / f"{'quick' if args.quick else 'full'}-{settings_key(args)}"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    setup = build_setup(args)
    print(f"data: {len(setup.dataset.corpus)} passages, {len(setup.train)} train / {len(setup.test)} test questions; work {work}")
    stage = time.perf_counter()
    pools = mine(setup, args, work)
    print(f"stage mine: {time.perf_counter() - stage:.0f} s")
    utilities, label_seconds = label(setup, pools, args, work)
    stage = time.perf_counter()
    students = train_students(setup, pools, utilities, args, work)
    print(f"stage train: {time.perf_counter() - stage:.0f} s")
    stage = time.perf_counter()
    result = evaluate_systems(setup, students, args, work)
    print(f"stage judge and evaluate: {time.perf_counter() - stage:.0f} s")
    systems = ["bm25", *students]
    text = report(args, command, info, setup, label_seconds, result, systems, time.perf_counter() - started)
    print(text)
    if not args.no_write:
        append_benchmarks(text)
    kind = "machinery test, offline teachers (not LLMs)" if all(t.startswith("dirichlet") or t in TINY_MODELS for t in args.teacher_specs) else "LLM teachers"
    print(f"RESULT: cross-teacher{' (quick)' if args.quick else ''} ({kind}; {', '.join(args.teacher_specs)}): "
          + headline(result, args.teacher_specs, systems))


if __name__ == "__main__":
    main()
