"""Train a bi-encoder on training rows (:mod:`uae.training.rows`) with the sentence-transformers trainer.

The output is an ordinary sentence-transformers model folder, so ``SentenceTransformer(path)``
loads it anywhere; ``uae_training.json`` and a section of its README record the teacher, the loss,
its temperatures, the data and what model selection decided (:mod:`uae.training.selection`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from rich.progress import ProgressColumn, Task
from rich.text import Text

from uae.config import SelectionConfig, TrainingConfig
from uae.errors import NonFiniteWeights, import_optional
from uae.progress import progress_bar
from uae.retrieval.encoders import load_encoder
from uae.training.losses import LOSSES, world_size
from uae.training.rows import TrainingRows

TRAINING_LOG = "training_log.json"
TRAINING_RECORD = "uae_training.json"
DEV_CURVE = "dev_curve.png"


def train_model(
    rows: TrainingRows,
    base_model: str,
    out_dir: str | os.PathLike,
    config: TrainingConfig,
    record: dict,
    dev=None,
    selection: SelectionConfig | None = None,
    progress: bool = True,
) -> Path:
    """Fine-tune ``base_model`` on ``rows`` and save a sentence-transformers folder at ``out_dir``.

    With a ``dev`` set (:class:`uae.training.selection.DevSet`), the base is scored on it once and the
    student every ``selection.eval_every`` steps; the best checkpoint is kept, training stops
    after ``selection.patience`` evaluations without improvement, and a student that does not
    beat the base is reported on stderr and (``selection.fallback == "base"``) replaced by the
    base encoder, unchanged. A non-finite loss or non-finite weights stop training with an error
    and nothing is saved.

    Checkpoints go to ``out_dir/checkpoints`` and a rerun with the same settings resumes from the
    last one; they are removed once the final model is saved. ``record`` (teacher, data, targets)
    is written into the model folder beside the loss settings and the selection outcome.

    ``progress`` shows uae's progress bar (steps, rate, ETA, the last logged loss) in place of the
    trainer's tqdm bar and log lines, so that a log written to a file gets no line per step.

    Raises:
        ValueError: no rows, or checkpoints left by a run with other settings.
        uae.errors.MissingExtra: the ``train`` extra (datasets, accelerate) is not installed.
        uae.errors.NonFiniteLoss, uae.errors.NonFiniteWeights: training diverged.
    """
    require_train_extra()
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import EarlyStoppingCallback, PrinterCallback, ProgressCallback

    if not rows.queries:
        raise ValueError(f"no training rows for {out_dir}; skipped: {rows.skipped.to_dict()}")
    selection = selection or SelectionConfig()
    out_dir = Path(out_dir)
    checkpoints = out_dir / "checkpoints"
    resume = _resumable_checkpoint(checkpoints, {"training": config.model_dump(), "record": record, "rows": rows_digest(rows),
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
        disable_tqdm=True,
        use_cpu=cpu_data_parallel(),
    )
    callbacks = [_finite_weights_callback()] + ([EarlyStoppingCallback(early_stopping_patience=selection.patience)] if evaluator else [])
    loss = _make_loss(model, config)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=rows.to_dataset(), loss=loss,
                                         evaluator=evaluator, callbacks=callbacks)
    for printer in (PrinterCallback, ProgressCallback):  # the log dicts and tqdm: uae's bar shows progress instead
        trainer.remove_callback(printer)
    main_process = trainer.is_world_process_zero()
    with progress_bar(config.steps, f"training {out_dir.name}", "steps", progress and main_process, (LossColumn(),), loss=None) as advance:
        trainer.add_callback(_progress_callback(advance))
        trainer.train(resume_from_checkpoint=resume)
    check_finite_weights(model)
    if not main_process:  # under torchrun / accelerate launch, process 0 alone writes the model folder
        return out_dir
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
        "distributed": distributed_record(world_size(), loss),
        "training": config.model_dump(),
        "rows": len(rows.queries),
        "skipped": rows.skipped.to_dict(),
        "target_rules": {"rows_changed": dict(rows.adjusted), "confidence_threshold": rows.confidence_threshold},
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
    from uae.training.selection import dev_evaluator

    return dev_evaluator(dev, selection.metric, search_length)


def _selection_outcome(trainer, evaluator, base_scores: dict[str, float], dev, selection: SelectionConfig, steps: int):
    from uae.training.selection import SelectionOutcome, dev_history

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


def rows_digest(rows: TrainingRows) -> str:
    """A SHA-256 of the rows' queries, passages and labels: a resumed run must train on the very same rows."""
    digest = hashlib.sha256()
    for query, pool, label in zip(rows.queries, rows.pools, rows.labels):
        digest.update(json.dumps([query, pool, label]).encode())
    return f"{len(rows.queries)} rows, sha256 {digest.hexdigest()}"


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


TRAIN_EXTRA = ("datasets", "accelerate")
"""What training needs beyond the base install: the ``train`` extra, as in sentence-transformers."""


def require_train_extra() -> None:
    """Raise :class:`~uae.errors.MissingExtra`, naming the install command, when the ``train`` extra is missing."""
    for name in TRAIN_EXTRA:
        import_optional(name, "training needs datasets and accelerate, which the base install leaves out: pip install 'uae[train]'")


class LossColumn(ProgressColumn):
    """The training loss last logged by the trainer."""

    def render(self, task: Task) -> Text:
        loss = task.fields.get("loss")
        return Text("" if loss is None else f"loss {loss:.4g}", style="progress.data.speed")


def _progress_callback(advance: Callable[..., None]):
    """A trainer callback that moves uae's progress bar one step per optimisation step and shows the logged loss."""
    from transformers import TrainerCallback

    class ProgressBarCallback(TrainerCallback):
        """Advances the bar to the trainer's step (a resumed run starts where it stopped) and shows the loss."""

        done = 0

        def on_step_end(self, args, state, control, **kwargs):
            advance(state.global_step - self.done)
            self.done = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                advance(0, loss=float(logs["loss"]))

    return ProgressBarCallback()


def _finite_weights_callback():
    """A trainer callback that checks after every optimisation step that the weights are finite."""
    from transformers import TrainerCallback

    class FiniteWeightsCallback(TrainerCallback):
        """Checks after every optimisation step that the weights are finite."""

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if model is not None:
                check_finite_weights(model)

    return FiniteWeightsCallback()


def distributed_record(processes: int, loss) -> dict:
    """What the training record says of data-parallel training: processes, and whether negatives spanned them."""
    return {
        "world_size": processes,
        "in_batch_negatives_across_processes": bool(processes > 1 and getattr(loss, "in_batch_negatives", False)
                                                    and getattr(loss, "gather_across_devices", False)),
    }


def cpu_data_parallel() -> bool:
    """Whether this is ``torchrun`` / ``accelerate launch`` on a machine without GPUs.

    accelerate then needs ``use_cpu`` to run DDP over gloo (``MULTI_CPU``); without it each process
    would train alone on the same batches.
    """
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def _make_loss(model, config: TrainingConfig):
    loss_class = LOSSES[config.loss]
    options = {"tau_s": config.tau_s} if config.loss != "margin_mse" else {}
    if config.loss in ("um_infonce", "infonce_gold", "hard_utility"):
        options["gather_across_devices"] = config.gather_across_devices
    if config.loss == "um_infonce":
        options["hard_mix"] = config.hard_mix
    if config.loss == "infonce_gold":
        options["multi_positive"] = config.multi_positive
    return loss_class(model, **options)


def write_record(out_dir: Path, record: dict, log_history: list[dict]) -> None:
    """Write ``uae_training.json``, the trainer's log and a readable section of the model card."""
    (out_dir / TRAINING_LOG).write_text(json.dumps(log_history, indent=2))
    (out_dir / TRAINING_RECORD).write_text(json.dumps(record, indent=2, default=str))
    readme = out_dir / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else "# UAE model\n"
    base = record.get("base_model")
    name, licence = (base_model_name(base), base_model_licence(base)) if base else (None, None)
    readme.write_text(card_front_matter(text, name, licence) + "\n\n" + training_card_section(record, name, licence),
                      encoding="utf-8")


def base_model_name(base_model: str) -> str:
    """The base model as a model card names it: a hub id (``minilm`` is sentence-transformers/all-MiniLM-L6-v2) or a folder name."""
    from uae.retrieval.encoders import display_name

    return display_name(base_model)


def base_model_licence(base_model: str) -> str | None:
    """The ``license`` of the base model's card (its README front matter), when it has one locally."""
    import yaml

    from uae.retrieval.encoders import resolve_encoder

    card = Path(resolve_encoder(base_model)) / "README.md"
    if not card.is_file():
        return None
    parts = card.read_text(encoding="utf-8").split("---", 2)
    try:
        front = yaml.safe_load(parts[1]) if len(parts) == 3 and not parts[0].strip() else None
    except yaml.YAMLError:
        return None
    licence = front.get("license") if isinstance(front, dict) else None
    return str(licence) if licence else None


def card_front_matter(text: str, base: str | None, licence: str | None) -> str:
    """The card with ``base_model`` and ``license`` in its YAML front matter and its "Unknown" lines filled in."""
    if base is None:
        return text
    lines = [f"base_model: {base}"] + ([f"license: {licence}"] if licence else [])
    if text.startswith("---\n"):
        head, sep, rest = text[4:].partition("\n---")
        kept = [line for line in head.splitlines() if not line.startswith(("base_model:", "license:"))]
        text = "---\n" + "\n".join(kept + lines) + sep + rest
    hub = f"[{base}](https://huggingface.co/{base})" if "/" in base else base
    text = text.replace("<!-- - **Base model:** [Unknown](https://huggingface.co/unknown) -->", f"- **Base model:** {hub}")
    if licence:
        text = text.replace("<!-- - **License:** Unknown -->", f"- **License:** {licence} (the base model's)")
    return text


def training_card_section(record: dict, base: str | None, licence: str | None) -> str:
    """A readable "UAE training" section: what the model learned from, how, and what model selection found."""
    loss = record.get("loss", {})
    targets = record.get("targets", {})
    training = record.get("training", {})
    data = record.get("data") or {}
    if not isinstance(data, dict):  # `uae train` records the data folder itself
        data = {"path": str(data)}
    teacher = record.get("teacher")
    teacher_text = teacher.get("teachers", teacher) if isinstance(teacher, dict) else teacher
    rows = [
        ("Base model", f"{base}" + (f" (licence {licence})" if licence else "")),
        ("Teacher (utility labels)", f"`{teacher_text}`"),
        ("Loss", f"`{loss.get('name')}`" + "".join(f", {k} {v}" for k, v in loss.items() if k not in ("name", "tau_s"))),
        ("Student temperature tau_s", loss.get("tau_s", training.get("tau_s"))),
        ("Teacher temperature tau_t", f"{targets.get('tau_t')} (utility normalisation {targets.get('normalize')})" if targets else "-"),
        ("Training data", f"{record.get('rows')} training questions ({data.get('split', '?')} split)"
                          + (f", {data['dev_questions']} held out for model selection" if data.get("dev_questions") else "")),
        ("Dataset", data.get("path", "-")),
        ("Steps, batch, learning rate", f"{training.get('steps')}, {training.get('batch_size')}, {training.get('learning_rate')}"),
        ("Model selection", (record.get("selection") or {}).get("verdict", (record.get("selection") or {}).get("reason", "-"))),
        ("Training time", f"{record['train_seconds']:.0f} s" if record.get("train_seconds") else "-"),
    ]
    table = ["| | |", "|---|---|", *(f"| {key} | {_cell(value)} |" for key, value in rows)]
    return "## UAE training\n\n" + "\n".join(table) + "\n" + _selection_table(record.get("selection") or {}) + \
        f"\nThe full record (every setting) is `{TRAINING_RECORD}`.\n"


def _selection_table(selection: dict) -> str:
    base, best = selection.get("base"), selection.get("best")
    if not base or not best:
        return ""
    metrics = [m for m in base if m in best]
    return ("\nDev split (model selection), base encoder against the kept student:\n\n| | " + " | ".join(metrics) + " |\n|---|"
            + "---:|" * len(metrics) + "\n| base | " + " | ".join(f"{base[m]:.4f}" for m in metrics)
            + " |\n| student | " + " | ".join(f"{best[m]:.4f}" for m in metrics) + " |\n")


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def add_eval_to_card(model_dir: str | os.PathLike, metrics: dict[str, dict[str, float]], split: str, system: str) -> None:
    """Append the evaluation table (every system on ``split``, ``system`` marked) to a trained model's card."""
    readme = Path(model_dir) / "README.md"
    if not readme.is_file() or not metrics:
        return
    names = sorted({m for row in metrics.values() for m in row})
    lines = [f"\n## Evaluation ({split} split)\n", "| system | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, row in metrics.items():
        label = f"**{name}** (this model)" if name == system else name
        lines.append(f"| {label} | " + " | ".join(f"{row[m]:.4f}" if m in row else "-" for m in names) + " |")
    text = readme.read_text(encoding="utf-8").split("\n## Evaluation (")[0].rstrip("\n")
    readme.write_text(text + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def read_training_log(model_dir: str | os.PathLike) -> list[dict]:
    """The trainer's log history saved beside a trained model (empty for untrained models)."""
    path = Path(model_dir) / TRAINING_LOG
    return json.loads(path.read_text()) if path.is_file() else []
