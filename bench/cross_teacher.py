"""The cross-teacher test: train on teacher A's utilities, judge by a held-out teacher B (and by humans).

For every teacher given, a student (the base encoder fine-tuned with UM-InfoNCE on that teacher's
utility targets) is trained on the same SQuAD questions and pools; one more student learns from
all teachers at once (``--mix``: ``mean_distribution`` or ``mean_zscore`` of their utilities,
equal weights), and two references stand beside them: the base encoder zero-shot and the encoder
fine-tuned with plain InfoNCE on the human gold paragraph. Every student is then scored on
held-out test questions (other SQuAD articles) against every teacher's judgement:

- nDCG@10 on graded qrels built from that teacher's utilities (``uae.cross_teacher.graded_qrels``:
  within-query quantiles of the positive utilities, grades 0..3), dense retrieval over the whole
  corpus; ``*``: paired t-test p < 0.05 against the base encoder on the same queries;
- utility nDCG@10 (gains = the teacher's positive utilities themselves);
- Kendall's tau-b between the student's cosine scores and the teacher's utilities over each test
  query's pool;

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

Data: SQuAD v1.1 dev, first half (``/work/shared/data/squad/squad-v1.1-dev-part1.json``, 24
articles), split by article into train and test; ``--articles`` keeps the first N articles
(sorted by title) as the corpus. Work is saved under ``--work`` in a folder named by the settings'
hash (pools, labels, models), so a rerun with the same settings resumes.

    python bench/cross_teacher.py --quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SQUAD = Path("/work/shared/data/squad/squad-v1.1-dev-part1.json")
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
    return args


def machine() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return {"cores": os.cpu_count(), "cpu": cpu, "gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
            "load_average": os.getloadavg()}


def settings_key(args: argparse.Namespace) -> str:
    keys = ("data", "teacher_specs", "mix", "articles", "train_questions", "test_questions", "pool_size", "steps", "batch_size",
            "max_seq_length", "eval_seq_length", "tau_t", "base_model", "seed")
    payload = json.dumps({k: getattr(args, k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def build_tiny_lm(kind: str, folder: Path) -> Path:
    """A 2-layer random causal LM (GPT-2 or Llama) with the packaged MiniLM tokenizer, context 512."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from uae.encoders import packaged_minilm_path

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
    from uae.data.tables import read_pools, write_pools
    from uae.mining import mine_pools
    from uae.retriever import Retriever

    path = work / "pools.parquet"
    if path.is_file():
        REUSED.append("pools")
        return read_pools(path)
    retriever = Retriever.build(args.base_model, setup.dataset.corpus, args.eval_seq_length, progress=False)
    pools = mine_pools(setup.dataset, setup.train + setup.test, retriever, args.pool_size, 50, True, progress=False)
    write_pools(pools, path)
    return pools


def label(setup: Setup, pools, args: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    """``({teacher: utilities}, {teacher: seconds})``, labels saved per teacher (resumable)."""
    from uae.labeling import label_pools, read_labels
    from uae.targets import utilities_from_nlls
    from uae.teachers import load_teacher

    utilities, seconds = {}, {}
    for spec in args.teacher_specs:
        resolved = f"hf:{build_tiny_lm(spec, work / spec)}" if spec in TINY_MODELS else spec
        folder = work / "labels" / spec.replace("/", "_").replace(":", "_")
        started = time.perf_counter()
        summary = label_pools(setup.train + setup.test, pools, setup.dataset.corpus, load_teacher(resolved), folder, 64, progress=False)
        seconds[spec] = time.perf_counter() - started
        if summary.parts_reused:
            REUSED.append(f"labels of {spec} ({summary.parts_reused} parts)")
        utilities[spec], skipped = utilities_from_nlls(read_labels(folder), "mean")
        print(f"  labels {spec}: {summary.pairs} pairs, {summary.truncated} truncated, {seconds[spec]:.0f} s, skipped {skipped.to_dict()}")
    return utilities, seconds


def train_students(setup: Setup, pools, utilities: dict, args: argparse.Namespace, work: Path) -> dict[str, str]:
    """``{student: model path}``: base, infonce_gold, one per teacher, and the mix."""
    from uae.targets import TargetConfig
    from uae.cross_teacher import mixed_training_utilities

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
    from uae.training import build_training_rows, train_model

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


def evaluate_students(setup: Setup, pools, utilities: dict, students: dict[str, str], args: argparse.Namespace) -> dict:
    """Runs and pool scores of every student, then every measure against every judge."""
    from uae.cross_teacher import student_scores

    pool_ids = {q.id: [c.passage_id for c in pools[q.id]] for q in setup.test}
    runs, scores = {}, {}
    for name, path in students.items():
        runs[name], scores[name] = student_scores(path, setup.test, setup.dataset.corpus, pool_ids, 100, max_seq_length=args.eval_seq_length)
    return measure(setup, utilities, runs, scores, args)


def measure(setup: Setup, utilities: dict, runs: dict, scores: dict, args: argparse.Namespace) -> dict:
    from uae.cross_teacher import graded_qrels, mean, pool_kendall_tau, teacher_agreement, utility_ndcg
    from uae.evaluation import compare, evaluate

    test_ids = {q.id for q in setup.test}
    human = {qid: setup.dataset.qrels["test"][qid] for qid in test_ids}
    result = {"human": evaluate(human, runs, ["ndcg@10", "recall@1"]), "judges": {}, "agreement": {}, "top1_gold": {}}
    for judge, table in utilities.items():
        held = {qid: row for qid, row in table.items() if qid in test_ids}
        qrels, empty = graded_qrels(held, args.grades)
        comparison = compare(qrels, runs, baseline="base", metrics=["ndcg@10", "mrr"])
        result["judges"][judge] = {
            "queries": comparison.n_queries,
            "no_positive": empty.total,
            "ndcg": {s: comparison.results[s]["ndcg@10"] for s in runs},
            "utility_ndcg": {s: mean(utility_ndcg(run, held, 10)) for s, run in runs.items()},
            "tau": {s: mean(pool_kendall_tau(scores[s], held)[0]) for s in runs},
        }
        result["top1_gold"][judge] = mean([float(human[q].get(max(row, key=row.get), 0) > 0) for q, row in held.items()])
        result["agreement"][judge] = {other: mean(teacher_agreement(held, {q: r for q, r in utilities[other].items() if q in test_ids})[0])
                                      for other in utilities}
    return result


# ---- the report ------------------------------------------------------------------------------


def tables(result: dict, students: list[str], teachers: list[str]) -> list[str]:
    def cell(r) -> str:
        return f"{r.mean:.4f}{'*' if r.significant else ''}"

    head = "| student (trained on) | " + " | ".join(f"judged by {t}" for t in teachers)
    lines = ["**nDCG@10 on graded qrels from each teacher's utilities** (dense retrieval over the whole corpus; "
             "`*`: paired t-test p < 0.05 against `base`), and against human evidence:", "",
             head + " | human nDCG@10 | human R@1 |", "|---" * (len(teachers) + 3) + "|"]
    for s in students:
        row = " | ".join(cell(result["judges"][t]["ndcg"][s]) for t in teachers)
        lines.append(f"| {s} | {row} | {result['human'][s]['ndcg@10']:.4f} | {result['human'][s]['recall@1']:.4f} |")
    counts = ", ".join(f"{t}: {result['judges'][t]['queries']} ({result['judges'][t]['no_positive']} without a helpful passage)"
                       for t in teachers)
    lines += ["", f"Test queries judged per teacher: {counts}.", ""]
    for key, title in (("tau", "Kendall tau-b between student cosine and teacher utility over each test pool (mean over queries)"),
                       ("utility_ndcg", "utility nDCG@10 (gains = the teacher's positive utilities)")):
        lines += [f"**{title}:**", "", head + " |", "|---" * (len(teachers) + 1) + "|"]
        lines += [f"| {s} | " + " | ".join(f"{result['judges'][t][key][s]:.4f}" for t in teachers) + " |" for s in students]
        lines.append("")
    lines += ["**Teachers against each other and against humans** (Kendall tau-b between utilities over the test pools; "
              "top-1 = gold: share of test queries whose highest-utility passage is the human gold paragraph):", "",
              "| teacher | " + " | ".join(teachers) + " | top-1 = gold |", "|---" * (len(teachers) + 2) + "|"]
    lines += [f"| {t} | " + " | ".join(f"{result['agreement'][t][o]:.3f}" for o in teachers) + f" | {result['top1_gold'][t]:.3f} |"
              for t in teachers]
    return lines


def headline(result: dict, teachers: list[str], students: list[str]) -> str:
    own = [result["judges"][t]["ndcg"][f"on {t}"].mean for t in teachers]
    held = [result["judges"][b]["ndcg"][f"on {a}"].mean for a in teachers for b in teachers if a != b]
    base = [result["judges"][t]["ndcg"]["base"].mean for t in teachers]
    mix = [s for s in students if s.startswith("mix")]
    parts = [f"teacher-judged nDCG@10 own-teacher {sum(own) / len(own):.4f}, held-out-teacher {sum(held) / len(held):.4f}, "
             f"base {sum(base) / len(base):.4f}"]
    if mix:
        parts.append(f"mix {sum(result['judges'][t]['ndcg'][mix[0]].mean for t in teachers) / len(teachers):.4f}")
    parts.append("human nDCG@10 " + ", ".join(f"{s} {result['human'][s]['ndcg@10']:.4f}" for s in students))
    return "; ".join(parts)


def report(args, command: str, info: dict, setup: Setup, label_seconds: dict, result: dict, students: list[str], seconds: float) -> str:
    teachers = args.teacher_specs
    offline = all(t.startswith("dirichlet") or t in TINY_MODELS for t in teachers)
    lines = [
        f"\n## Cross-teacher test (bench/cross_teacher.py{' --quick' if args.quick else ''}), {dt.date.today().isoformat()}\n",
        f"Command: `{command}`  ",
        f"Machine: {info['cores']} CPU cores ({info['cpu']}), {info['gpu']}, torch {info['torch']}; shared with other "
        f"engineers' jobs (load average {info['load_average'][0]:.1f} at the start). Wall time {seconds:.0f} s"
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
        f"{len(setup.train)} train and {len(setup.test)} test questions (sampled, seed {args.seed}). Pools: {args.pool_size} "
        f"passages per question (BM25 + `{args.base_model}`, RRF, gold kept). Students: `{args.base_model}` + UM-InfoNCE "
        f"(z-normalised utilities, tau_t {args.tau_t}, tau_s 0.05), {args.steps} steps of {args.batch_size} questions, "
        f"max_seq_length {args.max_seq_length} in training, {args.eval_seq_length} for every model in mining and evaluation; `infonce_gold`: plain InfoNCE on the gold paragraph, same steps; `mix`: "
        f"{args.mix} of all teachers, equal weights. Graded qrels: within-query quantiles, grades 0..{args.grades}.  ",
        "Labeling time: " + ", ".join(f"{t} {s:.0f} s" for t, s in label_seconds.items()) + ".\n",
        *tables(result, students, teachers),
        "",
        "Real test with two LLM families (GPU; models in the Hugging Face cache), not run here:  ",
        "`python bench/cross_teacher.py --teachers hf:Qwen/Qwen2.5-1.5B-Instruct,hf:meta-llama/Llama-3.2-1B-Instruct "
        "--articles 24 --train-questions 2000 --test-questions 500 --pool-size 16 --steps 300 --batch-size 16`",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    info = machine()
    print(f"command: {command}")
    print(f"machine: {info['cores']} cores ({info['cpu']}), {info['gpu']}, torch {info['torch']}, "
          f"load average {info['load_average'][0]:.1f} (shared machine)")
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
    result = evaluate_students(setup, pools, utilities, students, args)
    print(f"stage evaluate: {time.perf_counter() - stage:.0f} s")
    text = report(args, command, info, setup, label_seconds, result, list(students), time.perf_counter() - started)
    print(text)
    if not args.no_write:
        with open(ROOT / "BENCHMARKS.md", "a", encoding="utf-8") as handle:
            if handle.tell() == 0:
                handle.write("# Benchmarks\n\nWritten by the scripts under bench/; each section is one run.\n")
            handle.write(text)
    kind = "machinery test, offline teachers (not LLMs)" if all(t.startswith("dirichlet") or t in TINY_MODELS for t in args.teacher_specs) else "LLM teachers"
    print(f"RESULT: cross-teacher{' (quick)' if args.quick else ''} ({kind}; {', '.join(args.teacher_specs)}): "
          + headline(result, args.teacher_specs, list(students)))


if __name__ == "__main__":
    main()
