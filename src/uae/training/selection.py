"""Model selection on a dev split of the training questions: never ship a student worse than its base.

Training holds out a dev split of its own questions, whole documents at a time
(:func:`split_dev`), so that the questions it selects on share no document with the questions it
learns from. The base encoder is scored on it once and the student every ``eval_every`` steps
(:class:`DevEvaluator`, a sentence-transformers evaluator, so the trainer keeps the best
checkpoint and stops early through its own machinery). When the best student does not beat the
base on the selection metric, training says so and, by default, ships the base unchanged.

The dev questions are scored by re-ranking their mined pools (within their scope), which keeps
each evaluation to seconds on a CPU and judges the base and every checkpoint on the same passages.
Three selection metrics, all reported:

- ``evidence``: MAP over the evidence labels (beside recall@1, hit@1 and MRR), when the dev
  questions have them;
- ``answer``: answer recall@1, the share of questions whose top passage holds a gold answer
  (meaningful for extractive answers);
- ``utility``: the teacher's own graded judgement of the dev pools, nDCG@10 with the teacher's
  positive utilities as gains (:func:`uae.evaluation.cross_teacher.utility_ndcg`). It needs no evidence
  labels, only the labels the teacher already gave the pools.

``auto`` selects on ``evidence`` when evidence labels are used, else on ``utility``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from uae.data.schema import Dataset, Qrels, Query
from uae.data.tables import Pools

SelectionMetric = Literal["auto", "evidence", "answer", "utility"]

PRIMARY_METRIC = {"evidence": "map", "answer": "answer_recall@1", "utility": "utility_ndcg@10"}
"""The dev metric each selection metric keeps the best checkpoint by."""

EVIDENCE_METRICS = ("recall@1", "hit_rate@1", "mrr", "map")


@dataclass(frozen=True)
class DevSet:
    """The held-out dev questions and what scoring them needs.

    Attributes:
        queries: the dev questions.
        candidates: ``{query_id: [passage_id, ...]}``, each question's mined pool.
        texts: ``{passage_id: text}`` of every candidate, as the encoder reads it.
        answers: ``{query_id: gold answers}``.
        qrels: evidence labels of the dev questions; ``None`` when evidence is not used.
        utilities: the teacher's ``{query_id: {passage_id: utility}}`` over the pools; ``None`` if unlabeled.
        documents: how many documents the dev questions come from.
    """

    queries: list[Query]
    candidates: dict[str, list[str]]
    texts: dict[str, str]
    answers: dict[str, list[str]]
    qrels: Qrels | None = None
    utilities: dict[str, dict[str, float]] | None = None
    documents: int = 0

    def metric(self, requested: SelectionMetric) -> str:
        """The selection metric ``auto`` stands for, checked against what this dev set holds.

        Raises:
            ValueError: ``evidence`` without evidence labels, or ``utility`` without teacher labels.
        """
        chosen = requested if requested != "auto" else "evidence" if self.qrels else "utility"
        if chosen == "evidence" and not self.qrels:
            raise ValueError("selection metric 'evidence' needs evidence labels (qrels) of the training questions")
        if chosen == "utility" and not self.utilities:
            raise ValueError("selection metric 'utility' needs the teacher's labels of the dev pools")
        return chosen


@dataclass
class DevSplit:
    """Training questions split into the ones to learn from and the held-out dev questions."""

    train: list[Query]
    dev: list[Query]
    documents: int = 0
    reason: str | None = None
    """Why there is no dev split (``None`` when there is one)."""


def split_dev(queries: Sequence[Query], documents: Mapping[str, str], fraction: float, min_questions: int,
              seed: int = 13, max_share: float = 0.25) -> DevSplit:
    """Hold out whole documents of ``queries`` as a dev split.

    Documents are drawn in a seeded random order until the dev split holds at least
    ``max(fraction * n, min_questions)`` questions, but never more than ``max_share`` of them (so
    small training sets keep most of their questions).

    Args:
        queries: the training questions.
        documents: ``{query_id: document}`` (see :func:`uae.data.splits.query_documents`); a
            question missing from it is its own document.
        fraction: share of the questions to hold out; 0 turns the split off.
        min_questions: the fewest dev questions wanted, where the data allows.
        seed: shuffle seed.
        max_share: the largest share of the questions the dev split may take.

    Returns:
        A :class:`DevSplit`; ``dev`` is empty (and ``reason`` says why) when no split can be made.
    """
    if fraction <= 0:
        return DevSplit(list(queries), [], 0, "model selection is off (dev fraction 0)")
    by_document: dict[str, list[Query]] = {}
    for query in queries:
        by_document.setdefault(documents.get(query.id, query.id), []).append(query)
    if len(by_document) < 2:
        return DevSplit(list(queries), [], 0, f"the {len(queries)} training questions come from fewer than 2 documents")
    wanted = max(math.ceil(fraction * len(queries)), min_questions)
    ceiling = math.floor(max_share * len(queries))
    order = sorted(by_document)
    random.Random(f"dev:{seed}").shuffle(order)
    held: list[str] = []
    count = 0
    for document in order:
        size = len(by_document[document])
        if count >= wanted or count + size > ceiling:
            continue
        held.append(document)
        count += size
    if not held:
        return DevSplit(list(queries), [], 0, f"no document fits in {max_share:.0%} of the {len(queries)} training questions")
    dev_documents = set(held)
    dev = [q for q in queries if documents.get(q.id, q.id) in dev_documents]
    train = [q for q in queries if documents.get(q.id, q.id) not in dev_documents]
    return DevSplit(train, dev, len(dev_documents))


def build_dev_set(dataset: Dataset, split: DevSplit, pools: Pools, utilities: Mapping[str, Mapping[str, float]] | None,
                  qrels: Qrels | None) -> DevSet:
    """The :class:`DevSet` of ``split.dev``: their pools, texts, answers, evidence and teacher labels."""
    candidates = {q.id: [c.passage_id for c in pools[q.id]] for q in split.dev if pools.get(q.id)}
    texts = {pid: dataset.corpus[pid].full_text for pool in candidates.values() for pid in pool}
    kept = [q for q in split.dev if q.id in candidates]
    judged = {q.id: dict(qrels[q.id]) for q in kept if qrels and q.id in qrels} if qrels is not None else None
    labelled = {q.id: dict(utilities[q.id]) for q in kept if utilities and q.id in utilities} if utilities is not None else None
    return DevSet(kept, candidates, texts, {q.id: list(q.answers) for q in kept}, judged or None, labelled or None,
                  split.documents)


def score_dev(model, dev: DevSet, batch_size: int = 64) -> dict[str, float]:
    """Every dev metric of ``model``: evidence (when labelled), answer recall@1/5, utility nDCG@10.

    Each question's mined pool is re-ranked by cosine similarity to the question.
    """
    from uae.retrieval.encoders import encode

    ids = list(dev.texts)
    passages = encode(model, [dev.texts[pid] for pid in ids], batch_size, "dev passages", progress=False)
    questions = encode(model, [q.text for q in dev.queries], batch_size, "dev questions", progress=False)
    row = {pid: i for i, pid in enumerate(ids)}
    run = {}
    for query, vector in zip(dev.queries, questions):
        pool = dev.candidates[query.id]
        scores = passages[[row[pid] for pid in pool]] @ vector
        run[query.id] = dict(zip(pool, map(float, scores)))
    return dev_metrics(run, dev)


def dev_metrics(run: Mapping[str, Mapping[str, float]], dev: DevSet) -> dict[str, float]:
    """The dev metrics of one run over the dev pools."""
    from uae.evaluation import answer_recall_at_k, evaluate
    from uae.evaluation.cross_teacher import utility_ndcg

    metrics: dict[str, float] = {}
    if dev.qrels:
        metrics.update(evaluate(dev.qrels, {"run": run}, EVIDENCE_METRICS)["run"])
    for k in (1, 5):
        try:
            metrics[f"answer_recall@{k}"] = answer_recall_at_k(run, dev.texts, dev.answers, k)
        except ValueError:  # no dev question has an answer that survives normalisation
            break
    if dev.utilities:
        per_query = utility_ndcg(run, dev.utilities, k=10)
        if per_query:
            metrics["utility_ndcg@10"] = float(np.mean(list(per_query.values())))
    return metrics


def dev_evaluator(dev: DevSet, metric: SelectionMetric, search_length: int | None = None):
    """A sentence-transformers evaluator that scores a model on ``dev`` (see :class:`DevEvaluator`)."""
    from sentence_transformers.base.evaluation import BaseEvaluator

    class DevEvaluator(BaseEvaluator):
        """Scores the model on the dev pools; the trainer keeps the checkpoint with the best primary metric.

        The model is scored at ``search_length`` tokens (the length it will search with), not the
        shorter training length.
        """

        def __init__(self) -> None:
            super().__init__()
            self.selection = dev.metric(metric)
            self.primary_metric = f"dev_{PRIMARY_METRIC[self.selection]}"
            self.greater_is_better = True

        def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
            training_length = model.max_seq_length
            if search_length is not None:
                model.max_seq_length = search_length
            try:
                scores = score_dev(model, dev)
            finally:
                model.max_seq_length = training_length
            return {f"dev_{name}": value for name, value in scores.items()}

    return DevEvaluator()


@dataclass
class SelectionOutcome:
    """What model selection decided, for ``uae_training.json``, the model card and the report."""

    metric: str
    base: dict[str, float]
    best: dict[str, float]
    best_step: int | None
    history: list[dict[str, float]] = field(default_factory=list)
    shipped: Literal["student", "base"] = "student"
    dev_questions: int = 0
    dev_documents: int = 0
    stopped_early: bool = False

    @property
    def beats_base(self) -> bool:
        key = PRIMARY_METRIC[self.metric]
        return self.best.get(key, -math.inf) > self.base.get(key, math.inf)

    def verdict(self) -> str:
        """One line: which model was kept, by how much it beat (or did not beat) the base on dev."""
        key = PRIMARY_METRIC[self.metric]
        best, base = self.best.get(key, math.nan), self.base.get(key, math.nan)
        if self.beats_base:
            return (f"the best student (step {self.best_step}) beats the base encoder on the dev split: "
                    f"{key} {best:.4f} against {base:.4f} ({self.dev_questions} questions)")
        kept = "the base encoder is saved unchanged" if self.shipped == "base" else "the student is saved anyway (selection fallback: student)"
        return (f"the best student (step {self.best_step}, {key} {best:.4f}) does not beat the base encoder "
                f"({key} {base:.4f}) on the dev split of {self.dev_questions} questions; {kept}")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "primary": PRIMARY_METRIC[self.metric], "base": self.base, "best": self.best,
                "best_step": self.best_step, "beats_base": self.beats_base, "shipped": self.shipped,
                "dev_questions": self.dev_questions, "dev_documents": self.dev_documents,
                "stopped_early": self.stopped_early, "verdict": self.verdict(), "history": self.history}


def dev_history(log_history: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """The dev scores the trainer logged, one entry per evaluation: ``{"step": s, metric: value}``."""
    prefix = "eval_dev_"
    return [{"step": int(entry["step"]), **{k[len(prefix):]: float(v) for k, v in entry.items() if k.startswith(prefix)}}
            for entry in log_history if any(k.startswith(prefix) for k in entry)]
