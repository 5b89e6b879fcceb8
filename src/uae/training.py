"""Train a bi-encoder on utility targets with the sentence-transformers trainer.

Each training row is ``(query, p_1, ..., p_K, label)``: the query, its pool of ``K``
passages and what the loss needs about that pool (the utility distribution, the raw
utilities, or a one-hot of the gold passage; see ``Loss.label_kind``). The output is an
ordinary sentence-transformers model folder, so ``SentenceTransformer(path)`` loads it
anywhere; ``uae_training.json`` and a section of its README record the teacher, the loss,
its temperatures and the data.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uae.config import TargetsConfig, TrainingConfig
from uae.data.schema import Corpus, Query, SkipReport
from uae.data.tables import Candidate, Pools
from uae.encoders import load_encoder
from uae.losses import LOSSES
from uae.targets import TargetConfig, build_targets

TRAINING_LOG = "training_log.json"
TRAINING_RECORD = "uae_training.json"


@dataclass
class TrainingRows:
    """The columns handed to the trainer, and what was left out."""

    queries: list[str]
    pools: list[list[str]]
    labels: list[list[float]]
    skipped: SkipReport

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
) -> list[Candidate]:
    """Keep ``size`` passages of a mined pool for one training row, in pool order.

    Args:
        candidates: The query's pool, best-ranked first.
        size: Passages kept.
        selection: ``gold_first`` keeps the gold passages and then the best-ranked others (the
            DESIGN rule: every loss sees the same passages). ``rank`` keeps the best-ranked
            passages whatever they are, and ``utility_first`` the passage of highest utility and
            then the best-ranked others; these two do not look at the gold flags. (The mined pool
            holds every gold passage when ``mining.include_gold`` is on, the DESIGN default; turn
            it off too for a model that has learnt from question-answer pairs alone.)
        utilities: ``{passage_id: utility}`` of the query, needed by ``utility_first``.
    """
    if selection == "gold_first":
        first = [c for c in candidates if c.is_gold][:size]
    elif selection == "rank":
        first = []
    elif selection == "utility_first":
        if utilities is None:
            raise ValueError("pool selection 'utility_first' needs the query's utilities")
        scored = [c for c in candidates if c.passage_id in utilities]
        first = [max(scored, key=lambda c: utilities[c.passage_id])] if scored else []
    else:
        raise ValueError(f"pool selection must be gold_first, rank or utility_first, got {selection!r}")
    taken = {c.passage_id for c in first}
    others = [c for c in candidates if c.passage_id not in taken][: size - len(first)]
    chosen = taken | {c.passage_id for c in others}
    return [c for c in candidates if c.passage_id in chosen]


def build_training_rows(
    queries: Sequence[Query],
    pools: Pools,
    corpus: Corpus,
    label_kind: str,
    utilities: dict[str, dict[str, float]] | None,
    targets: TargetsConfig,
    pool_size: int,
    seed: int = 13,
    selection: str = "gold_first",
) -> TrainingRows:
    """Rows of exactly ``pool_size`` passages; short pools are padded with random out-of-pool passages.

    Padding passages come from outside the query's pool (and scope), so they are true
    negatives: target 0, gold 0, utility equal to the pool's lowest. ``selection`` is the rule of
    :func:`select_pool`; rows for a loss on gold evidence always keep the gold passages.
    """
    rng = random.Random(seed)
    skipped = SkipReport()
    rows = TrainingRows([], [], [], skipped)
    target_config = TargetConfig(**targets.model_dump())
    for query in queries:
        rule = "gold_first" if label_kind == "gold" else selection
        candidates = select_pool(pools.get(query.id, []), pool_size, rule, (utilities or {}).get(query.id))
        if not candidates:
            skipped.add("no candidate pool", query.id)
            continue
        label = _label_for(query, candidates, label_kind, utilities, target_config, skipped)
        if label is None:
            continue
        passage_ids = [c.passage_id for c in candidates]
        padding = _padding(corpus, set(passage_ids), pool_size - len(passage_ids), rng)
        pad_value = min(label) if label_kind == "utility" else 0.0
        rows.queries.append(query.text)
        rows.pools.append([corpus[pid].full_text for pid in passage_ids + padding])
        rows.labels.append(list(map(float, label)) + [pad_value] * len(padding))
    return rows


def _label_for(query, candidates, label_kind, utilities, target_config, skipped) -> list[float] | None:
    if label_kind == "gold":
        if not any(c.is_gold for c in candidates):
            skipped.add("no gold passage in pool", query.id)
            return None
        first_gold = next(i for i, c in enumerate(candidates) if c.is_gold)
        return [1.0 if i == first_gold else 0.0 for i in range(len(candidates))]
    if utilities is None or query.id not in utilities:
        skipped.add("no utilities (not labeled)", query.id)
        return None
    order = [c.passage_id for c in candidates]
    if label_kind == "utility":
        missing = [pid for pid in order if pid not in utilities[query.id]]
        if missing:
            raise ValueError(f"query {query.id!r}: no utility for pooled passages {missing[:5]}")
        values = [utilities[query.id][pid] for pid in order]
        if max(values) - min(values) < 1e-9:
            skipped.add("constant utilities", query.id)
            return None
        return values
    distributions, target_skips = build_targets({query.id: utilities[query.id]}, {query.id: order}, target_config)
    skipped.merge(target_skips)
    return distributions[query.id].tolist() if query.id in distributions else None


def _padding(corpus: Corpus, exclude: set[str], count: int, rng: random.Random) -> list[str]:
    chosen: list[str] = []
    while len(chosen) < count and len(exclude) + len(chosen) < len(corpus):
        pid = corpus.passages[rng.randrange(len(corpus))].id
        if pid not in exclude and pid not in chosen:
            chosen.append(pid)
    if len(chosen) < count:
        raise ValueError(f"corpus of {len(corpus)} passages is too small for pools of {count + len(exclude)}")
    return chosen


def train_model(
    rows: TrainingRows,
    base_model: str,
    out_dir: str | os.PathLike,
    config: TrainingConfig,
    record: dict,
) -> Path:
    """Fine-tune ``base_model`` on ``rows`` and save a sentence-transformers folder at ``out_dir``.

    Checkpoints go to ``out_dir/checkpoints`` and a rerun resumes from the last one; they are
    removed once the final model is saved. ``record`` (teacher, data, targets) is written
    into the model folder beside the loss settings.
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    if not rows.queries:
        raise ValueError(f"no training rows for {out_dir}; skipped: {rows.skipped.to_dict()}")
    out_dir = Path(out_dir)
    checkpoints = out_dir / "checkpoints"
    model = load_encoder(base_model)
    search_length = model.max_seq_length
    model.max_seq_length = config.max_seq_length
    model.model_card_data.local_files_only = True
    loss = _make_loss(model, config)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=int(config.warmup_ratio * config.steps),
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=max(1, config.steps // 40),
        save_strategy="steps",
        save_steps=max(10, config.steps // 4),
        save_total_limit=1,
        report_to="none",
        dataloader_pin_memory=False,
        dataloader_drop_last=len(rows.queries) >= config.batch_size,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=rows.to_dataset(), loss=loss)
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    trainer.train(resume_from_checkpoint=resume)
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
    }
    _write_record(out_dir, full_record, trainer.state.log_history)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return out_dir


def _make_loss(model, config: TrainingConfig):
    loss_class = LOSSES[config.loss]
    options = {"tau_s": config.tau_s} if config.loss != "margin_mse" else {}
    if config.loss == "um_infonce":
        options["hard_mix"] = config.hard_mix
    return loss_class(model, **options)


def label_kind_of(loss_name: str) -> str:
    """What the loss needs in its labels: ``distribution``, ``utility`` or ``gold``."""
    return LOSSES[loss_name].label_kind


def _write_record(out_dir: Path, record: dict, log_history: list[dict]) -> None:
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
