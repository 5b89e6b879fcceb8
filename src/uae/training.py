"""Train a bi-encoder on utility targets with the sentence-transformers trainer.

Each training row is ``(query, p_1, ..., p_K, label)``: the query, ``K`` passages of its pool and
what the loss needs about them (the target over the row, the raw utilities, or the gold marks;
see ``Loss.label_kind`` and :func:`uae.targets.row_target`). The output is an ordinary
sentence-transformers model folder, so ``SentenceTransformer(path)`` loads it anywhere;
``uae_training.json`` and a section of its README record the teacher, the loss, its temperatures,
the data and what model selection decided (:mod:`uae.selection`).

Rows. A row keeps at most ``max_gold`` gold passages (the most useful ones first when the
teacher's utilities are known, else the best-ranked) and fills the rest with the best-ranked
other passages, so every row has hard negatives whatever the loss; without that, on data with
many gold passages per question (QMSum: 11 on average) a row would hold nothing but gold. The
label-free selections (``rank``, ``utility_first``) never look at the gold flags.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uae.config import SelectionConfig, TrainingConfig
from uae.data.schema import Corpus, Query, SkipReport
from uae.data.tables import Candidate, Pools
from uae.retrieval.encoders import load_encoder
from uae.losses import LOSSES
from uae.targets import TargetConfig, row_target

TRAINING_LOG = "training_log.json"
TRAINING_RECORD = "uae_training.json"
DEV_CURVE = "dev_curve.png"


@dataclass
class TrainingRows:
    """The columns handed to the trainer, what was left out, and what the target rules changed."""

    queries: list[str]
    pools: list[list[str]]
    labels: list[list[float]]
    skipped: SkipReport
    adjusted: Counter = field(default_factory=Counter)
    """Rows the target rules changed: ``down-weighted``, ``softened``, ``gold masked``, ``gold floored``."""

    def to_dataset(self):
        from datasets import Dataset

        width = len(self.pools[0])
        columns = {"query": self.queries}
        for position in range(width):
            columns[f"passage_{position}"] = [pool[position] for pool in self.pools]
        columns["label"] = self.labels
        return Dataset.from_dict(columns)


def select_pool(
    candidates: Sequence[Candidate],
    size: int,
    selection: str = "gold_first",
    utilities: dict[str, float] | None = None,
    max_gold: int | None = None,
) -> list[Candidate]:
    """Keep ``size`` passages of a mined pool for one training row, in pool order.

    Args:
        candidates: The query's pool, best-ranked first.
        size: Passages kept.
        selection: ``gold_first`` keeps up to ``max_gold`` gold passages (the most useful first
            when ``utilities`` are given, else the best-ranked) and then the best-ranked others.
            ``rank`` keeps the best-ranked passages whatever they are, and ``utility_first`` the
            passage of highest utility and then the best-ranked others; these two do not look at
            the gold flags. (The mined pool holds every gold passage when ``mining.include_gold``
            is on; turn it off too for a model that learns from question-answer pairs alone.)
        utilities: ``{passage_id: utility}`` of the query; needed by ``utility_first``.
        max_gold: the most gold passages a ``gold_first`` row keeps (``None``: no limit).
    """
    if selection == "gold_first":
        gold = [c for c in candidates if c.is_gold]
        if utilities:
            gold = sorted(gold, key=lambda c: -utilities.get(c.passage_id, -np.inf))
        first = gold[: min(size, max_gold or size)]
        others = [c for c in candidates if not c.is_gold]
    elif selection == "rank":
        first, others = [], list(candidates)
    elif selection == "utility_first":
        if utilities is None:
            raise ValueError("pool selection 'utility_first' needs the query's utilities")
        scored = [c for c in candidates if c.passage_id in utilities]
        first = [max(scored, key=lambda c: utilities[c.passage_id])] if scored else []
        others = [c for c in candidates if c not in first]
    else:
        raise ValueError(f"pool selection must be gold_first, rank or utility_first, got {selection!r}")
    chosen = {c.passage_id for c in first} | {c.passage_id for c in others[: size - len(first)]}
    return [c for c in candidates if c.passage_id in chosen]


def build_training_rows(
    queries: Sequence[Query],
    pools: Pools,
    corpus: Corpus,
    label_kind: str,
    utilities: dict[str, dict[str, float]] | None,
    targets: TargetConfig,
    pool_size: int,
    seed: int = 13,
    selection: str = "gold_first",
    max_gold: int | None = None,
) -> TrainingRows:
    """Rows of exactly ``pool_size`` passages; short pools are padded with random out-of-pool passages.

    Padding passages come from outside the query's pool (and scope), so they are true
    negatives: target 0, gold 0, utility equal to the pool's lowest. ``selection`` and
    ``max_gold`` are the rules of :func:`select_pool`; rows for a loss on gold evidence always
    use ``gold_first``. The gold flags reach the targets (the ``gold`` rule of
    :class:`uae.targets.TargetConfig`) only under ``gold_first``.
    """
    rng = random.Random(seed)
    skipped = SkipReport()
    rows = TrainingRows([], [], [], skipped)
    rule = "gold_first" if label_kind == "gold" else selection
    for query in queries:
        query_utilities = (utilities or {}).get(query.id)
        candidates = select_pool(pools.get(query.id, []), pool_size, rule, query_utilities, max_gold)
        if not candidates:
            skipped.add("no candidate pool", query.id)
            continue
        label = _label_for(query, candidates, label_kind, query_utilities, targets, rule == "gold_first", rows)
        if label is None:
            continue
        passage_ids = [c.passage_id for c in candidates]
        padding = _padding(corpus, set(passage_ids), pool_size - len(passage_ids), rng)
        pad_value = min(label) if label_kind == "utility" else 0.0
        rows.queries.append(query.text)
        rows.pools.append([corpus[pid].full_text for pid in passage_ids + padding])
        rows.labels.append(list(map(float, label)) + [pad_value] * len(padding))
    return rows


def _label_for(query: Query, candidates: list[Candidate], label_kind: str, utilities: dict[str, float] | None,
               targets: TargetConfig, use_gold: bool, rows: TrainingRows) -> list[float] | None:
    """The label row of one query (``None`` when it is skipped, which ``rows.skipped`` counts)."""
    if label_kind == "gold":
        if not any(c.is_gold for c in candidates):
            rows.skipped.add("no gold passage in pool", query.id)
            return None
        return [1.0 if c.is_gold else 0.0 for c in candidates]
    if utilities is None:
        rows.skipped.add("no utilities (not labeled)", query.id)
        return None
    missing = [c.passage_id for c in candidates if c.passage_id not in utilities]
    if missing:
        raise ValueError(f"query {query.id!r}: no utility for pooled passages {missing[:5]}")
    values = [utilities[c.passage_id] for c in candidates]
    if label_kind == "utility":
        if max(values) - min(values) < 1e-9:
            rows.skipped.add("constant utilities", query.id)
            return None
        return values
    target = row_target(values, [c.is_gold for c in candidates] if use_gold else None, targets)
    if target.skip is not None:
        rows.skipped.add(target.skip, query.id)
        return None
    changes = {"down-weighted": target.weight < 1.0, "softened": target.softened, "gold masked": target.masked > 0,
               "gold floored": target.floored}
    rows.adjusted.update(name for name, changed in changes.items() if changed)
    return target.values.tolist()


def _padding(corpus: Corpus, exclude: set[str], count: int, rng: random.Random) -> list[str]:
    chosen: list[str] = []
    while len(chosen) < count and len(exclude) + len(chosen) < len(corpus):
        pid = corpus.passages[rng.randrange(len(corpus))].id
        if pid not in exclude and pid not in chosen:
            chosen.append(pid)
    if len(chosen) < count:
        raise ValueError(f"corpus of {len(corpus)} passages is too small for pools of {count + len(exclude)}")
    return chosen


class NonFiniteWeights(ArithmeticError):
    """The student's weights became NaN or infinite: training stops and no model is saved."""


def train_model(
    rows: TrainingRows,
    base_model: str,
    out_dir: str | os.PathLike,
    config: TrainingConfig,
    record: dict,
    dev=None,
    selection: SelectionConfig | None = None,
) -> Path:
    """Fine-tune ``base_model`` on ``rows`` and save a sentence-transformers folder at ``out_dir``.

    With a ``dev`` set (:class:`uae.selection.DevSet`), the base is scored on it once and the
    student every ``selection.eval_every`` steps; the best checkpoint is kept, training stops
    after ``selection.patience`` evaluations without improvement, and a student that does not
    beat the base is reported on stderr and (``selection.fallback == "base"``) replaced by the
    base encoder, unchanged. A non-finite loss or non-finite weights stop training with an error
    and nothing is saved.

    Checkpoints go to ``out_dir/checkpoints`` and a rerun with the same settings resumes from the
    last one; they are removed once the final model is saved. ``record`` (teacher, data, targets)
    is written into the model folder beside the loss settings and the selection outcome.

    Raises:
        ValueError: no rows, or checkpoints left by a run with other settings.
        uae.losses.NonFiniteLoss, NonFiniteWeights: training diverged.
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import EarlyStoppingCallback

    if not rows.queries:
        raise ValueError(f"no training rows for {out_dir}; skipped: {rows.skipped.to_dict()}")
    selection = selection or SelectionConfig()
    out_dir = Path(out_dir)
    checkpoints = out_dir / "checkpoints"
    resume = _resumable_checkpoint(checkpoints, {"training": config.model_dump(), "record": record, "rows": len(rows.queries),
                                                 "dev": [q.id for q in dev.queries] if dev else None,
                                                 "selection": selection.model_dump()})
    model = load_encoder(base_model)
    search_length = model.max_seq_length
    model.max_seq_length = config.max_seq_length
    model.model_card_data.local_files_only = True
    evaluator = _dev_evaluator(dev, selection, search_length)
    base_scores = evaluator(model) if evaluator else None
    every = min(selection.eval_every, config.steps)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=int(config.warmup_ratio * config.steps),
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=max(1, config.steps // 40),
        eval_strategy="steps" if evaluator else "no",
        eval_steps=every if evaluator else None,
        save_strategy="steps",
        save_steps=every if evaluator else max(10, config.steps // 4),
        save_total_limit=2 if evaluator else 1,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=f"eval_{evaluator.primary_metric}" if evaluator else None,
        greater_is_better=True,
        report_to="none",
        dataloader_pin_memory=False,
        dataloader_drop_last=len(rows.queries) >= config.batch_size,
        disable_tqdm=not sys.stderr.isatty(),
    )
    callbacks = [_finite_weights_callback()] + ([EarlyStoppingCallback(early_stopping_patience=selection.patience)] if evaluator else [])
    loss = _make_loss(model, config)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=rows.to_dataset(), loss=loss,
                                         evaluator=evaluator, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    check_finite_weights(model)
    outcome = None
    if evaluator:
        outcome = _selection_outcome(trainer, evaluator, base_scores, dev, selection, config.steps)
        print(f"{'' if outcome.beats_base else 'warning: '}{out_dir}: {outcome.verdict()}",
              file=sys.stdout if outcome.beats_base else sys.stderr)
        if outcome.shipped == "base":
            model = load_encoder(base_model)
    # Training truncates texts to config.max_seq_length to save time; the saved model reads as far
    # as the base encoder does, so a comparison with the base is not a comparison of truncations.
    model.max_seq_length = search_length
    model.save(str(out_dir))
    full_record = {
        **record,
        "base_model": base_model,
        "loss": {"name": config.loss, **loss.get_config_dict()},
        "training": config.model_dump(),
        "rows": len(rows.queries),
        "skipped": rows.skipped.to_dict(),
        "target_rules": dict(rows.adjusted),
        "selection": outcome.to_dict() if outcome else record.get("selection", {"dev": None, "reason": "no dev set was given"}),
        "train_seconds": next((e["train_runtime"] for e in reversed(trainer.state.log_history) if "train_runtime" in e), None),
    }
    write_record(out_dir, full_record, trainer.state.log_history)
    if outcome:
        from uae.evaluation.report import plot_dev_curve

        plot_dev_curve(outcome, out_dir / DEV_CURVE)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return out_dir


def _dev_evaluator(dev, selection: SelectionConfig, search_length: int):
    if dev is None or not dev.queries:
        return None
    from uae.selection import dev_evaluator

    return dev_evaluator(dev, selection.metric, search_length)


def _selection_outcome(trainer, evaluator, base_scores: dict[str, float], dev, selection: SelectionConfig, steps: int):
    from uae.selection import SelectionOutcome, dev_history

    history = dev_history(trainer.state.log_history)
    best_step = trainer.state.best_global_step
    best = next((h for h in history if h["step"] == best_step), history[-1] if history else {})
    strip = len("dev_")
    outcome = SelectionOutcome(
        metric=evaluator.selection,
        base={k[strip:]: v for k, v in base_scores.items()},
        best={k: v for k, v in best.items() if k != "step"},
        best_step=best_step,
        history=history,
        dev_questions=len(dev.queries),
        dev_documents=dev.documents,
        stopped_early=trainer.state.global_step < steps,
    )
    if not outcome.beats_base and selection.fallback == "base":
        outcome.shipped = "base"
    return outcome


def _resumable_checkpoint(checkpoints: Path, settings: dict) -> str | None:
    """The last checkpoint of an interrupted run with the same settings (``None`` when starting afresh).

    Raises:
        ValueError: ``checkpoints`` holds a checkpoint written with other settings.
    """
    from transformers.trainer_utils import get_last_checkpoint

    marker = checkpoints / "settings.json"
    stamp = json.dumps(settings, sort_keys=True, default=str)
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last and (not marker.is_file() or marker.read_text() != stamp):
        raise ValueError(f"{checkpoints} holds checkpoints of a training run with other settings; "
                         "remove that folder to start afresh, or train into another folder")
    checkpoints.mkdir(parents=True, exist_ok=True)
    marker.write_text(stamp)
    return last


def check_finite_weights(model) -> None:
    """Raise :class:`NonFiniteWeights` when a parameter of ``model`` holds a NaN or an infinity."""
    import torch

    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise NonFiniteWeights(f"weight {name} is no longer finite; lower the learning rate (no model was saved)")


def _finite_weights_callback():
    """A trainer callback that checks after every optimisation step that the weights are finite."""
    from transformers import TrainerCallback

    class FiniteWeightsCallback(TrainerCallback):
        """Checks after every optimisation step that the weights are finite."""

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if model is not None:
                check_finite_weights(model)

    return FiniteWeightsCallback()


def _make_loss(model, config: TrainingConfig):
    loss_class = LOSSES[config.loss]
    options = {"tau_s": config.tau_s} if config.loss != "margin_mse" else {}
    if config.loss == "um_infonce":
        options["hard_mix"] = config.hard_mix
    if config.loss == "infonce_gold":
        options["multi_positive"] = config.multi_positive
    return loss_class(model, **options)


def label_kind_of(loss_name: str) -> str:
    """What the loss needs in its labels: ``distribution``, ``utility`` or ``gold``."""
    return LOSSES[loss_name].label_kind


def write_record(out_dir: Path, record: dict, log_history: list[dict]) -> None:
    """Write ``uae_training.json``, the trainer's log and a readable section of the model card."""
    (out_dir / TRAINING_LOG).write_text(json.dumps(log_history, indent=2))
    (out_dir / TRAINING_RECORD).write_text(json.dumps(record, indent=2, default=str))
    readme = out_dir / "README.md"
    section = "\n\n## UAE training\n\n" + "\n".join(
        f"- **{key}**: `{json.dumps(value, default=str)}`" for key, value in record.items()
    ) + "\n"
    readme.write_text((readme.read_text(encoding="utf-8") if readme.is_file() else "# UAE model\n") + section, encoding="utf-8")


def read_training_log(model_dir: str | os.PathLike) -> list[dict]:
    """The trainer's log history saved beside a trained model (empty for untrained models)."""
    path = Path(model_dir) / TRAINING_LOG
    return json.loads(path.read_text()) if path.is_file() else []


def pool_utilities(utilities: dict[str, dict[str, float]]) -> np.ndarray:
    """Every (query, passage) utility, flattened: the data of the utility histogram."""
    return np.array([u for per_query in utilities.values() for u in per_query.values()], dtype=np.float64)
