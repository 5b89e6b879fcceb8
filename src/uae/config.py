"""The configuration of a run: one pydantic model, read from YAML by ``uae run CONFIG.yaml``.

Every choice the paper may have made differently (temperatures, normalisation, loss mix,
pool size) is a field here, and every report prints the config it ran with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from uae.errors import DataError, validation_problems
from uae.retrieval.encoders import DEFAULT_ENCODER

LossName = Literal["um_infonce", "infonce_gold", "hard_utility", "pool_kl", "margin_mse"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetConfig(BaseModel):
    """How utilities become a training target, applied in the order listed below.

    Attributes:
        harmful_floor: utilities below this value are raised to it, so that passages that
            mislead the teacher cannot push every other passage's share up without bound;
            ``None`` applies no floor.
        normalize: ``"zscore"`` standardises the utilities of each query over its pool
            (robust to perplexity noise that differs between queries); ``"none"`` keeps them.
        tau_t: teacher temperature of the softmax; smaller is sharper.
        top_m: keep only the ``m`` highest-utility passages (ties: earlier in the pool wins);
            the others get a target of exactly 0. ``None`` keeps all.
        confidence: what to do with a query whose best passage barely helps the teacher (its
            utility ``u_max`` is below the threshold ``c``): ``"weight"`` scales the query's loss
            by ``u_max / c``, ``"soften"`` raises its temperature to ``tau_t * c / u_max``,
            ``"skip"`` drops it, ``"none"`` trusts every query alike. Under every rule but
            ``"none"`` a query where no passage helps at all (``u_max <= 0``) is skipped. A sharp
            target on a query the teacher is unsure of teaches noise.
        confidence_quantile: the threshold ``c`` is this quantile of the best utilities of the
            training queries (those with ``u_max > 0``): the rule acts on the least sure share of
            the queries of *this* dataset and teacher. Utilities are nats per answer token, and
            their scale depends on the teacher and on the answers' length (a one-word answer
            gains far more per token from the right passage than a summary does), so a fixed
            threshold does not carry over from one dataset to the next.
        confident_utility: a fixed threshold ``c`` in nats per answer token instead of the quantile.
        gold: how passages marked as evidence (when evidence labels exist) enter the target:
            ``"mask"`` leaves a gold passage whose target is below the uniform share out of the
            query's softmax (it is not taught as a distractor, nor as a positive), ``"floor"``
            gives the row's gold passages at least ``gold_floor`` of the target together,
            ``"none"`` uses the teacher's target as it is.
        gold_floor: the ``"floor"`` rule's share.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tau_t: float = Field(default=0.1, gt=0, allow_inf_nan=False, description="teacher temperature of the target softmax")
    normalize: Literal["none", "zscore"] = "none"
    harmful_floor: float | None = Field(default=None, allow_inf_nan=False)
    top_m: int | None = Field(default=None, ge=1)
    confidence: Literal["none", "skip", "weight", "soften"] = Field(
        "weight", description="queries whose best passage helps less than the confidence threshold: weight | soften | skip | none")
    confidence_quantile: float = Field(0.25, gt=0, lt=1, description="the confidence threshold: this quantile of the "
                                       "training queries' best utilities")
    confident_utility: float | None = Field(None, gt=0, allow_inf_nan=False, description="a fixed confidence threshold "
                                            "(nats per answer token) instead of the quantile")
    gold: Literal["mask", "floor", "none"] = Field("mask", description="gold passages the teacher finds useless: mask | floor | none")
    gold_floor: float = Field(0.5, gt=0, le=1, description="the floor rule: share of the target the row's gold passages get at least")


class MiningConfig(_Strict):
    pool_size: int = Field(16, ge=2, description="candidates per query")
    depth: int = Field(100, ge=1, description="depth of each ranking before fusion")
    include_gold: bool = Field(True, description="always put gold evidence in the pool")


class LabelingConfig(_Strict):
    teacher: str = Field("dirichlet", description="dirichlet | dirichlet:mu=N | hf:<model> | openai:<base_url>,model=NAME | vllm:<model>")
    aggregate: Literal["mean", "max"] = "mean"
    part_queries: int = Field(64, ge=1)


class TrainingConfig(_Strict):
    loss: LossName = "um_infonce"
    tau_s: float = Field(0.05, gt=0, allow_inf_nan=False, description="student temperature")
    hard_mix: float = Field(0.0, ge=0, le=1, description="lam in (1-lam) L_soft + lam L_hard")
    steps: int = Field(160, ge=1, description="optimisation steps (the most: model selection may stop earlier)")
    batch_size: int = Field(8, ge=1, description="queries per step")
    train_pool_size: int | None = Field(4, ge=2, description="passages per query in training (None: the whole pool)")
    pool_selection: Literal["gold_first", "rank", "utility_first"] = Field(
        "gold_first", description="which pool passages a training row keeps: gold evidence first (DESIGN), the best-ranked "
        "only, or the teacher's most useful first (the last two ignore the gold flags); losses on gold always use gold_first")
    max_gold: int = Field(1, ge=1, description="gold_first rows: the most gold passages a row keeps; the rest are the "
                          "best-ranked other passages, so every row has hard negatives")
    multi_positive: Literal["spread", "mask"] = Field(
        "spread", description="infonce_gold with several gold passages in a row: spread the positive mass over them, "
        "or mask the other gold passages out of each positive's softmax")
    learning_rate: float = Field(3e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_seq_length: int = Field(128, ge=8, description="tokens per text in training; the saved model keeps the base encoder's length for search")
    seed: int = 13
    gather_across_devices: bool = Field(
        True, description="under torchrun / accelerate launch, in-batch negatives are every process's pools (the global "
        "batch), not only the local ones; no effect on one process")


class SelectionConfig(_Strict):
    """Model selection on a dev split held out from the training questions, by document (see ``uae.training.selection``)."""

    dev_fraction: float = Field(0.1, ge=0, lt=0.5, description="share of the training questions held out (0: no selection)")
    min_dev_questions: int = Field(50, ge=1, description="the fewest dev questions, where the data allows")
    metric: Literal["auto", "evidence", "answer", "utility"] = Field(
        "auto", description="what the best checkpoint is chosen by: evidence (MAP on the qrels), answer (answer recall@1), "
        "utility (the teacher's nDCG@10 over the dev pools); auto = evidence when evidence labels are used, else utility")
    eval_every: int = Field(20, ge=1, description="optimisation steps between dev evaluations")
    patience: int = Field(3, ge=1, description="dev evaluations without improvement before training stops")
    fallback: Literal["base", "student"] = Field(
        "base", description="what to save when the best student does not beat the base on dev (a warning is printed either way)")


class EvalConfig(_Strict):
    split: str = "test"
    depth: int = Field(100, ge=1)
    baseline: str = "base"
    significance: Literal["student", "fisher"] = "student"
    encode_scopes_only: bool = Field(False, description="when every evaluated question is scoped, encode only the documents they "
                                     "search (same metrics, less encoding; the saved index then holds those documents only)")
    oracle_depth: int = Field(20, ge=1, description="passages of the base encoder's ranking the teacher oracle re-ranks")
    hybrid: bool = Field(False, description="also evaluate NAME+bm25 for the base encoder and every model: the dense and "
                         "BM25 rankings fused by reciprocal rank fusion (uae.retrieval.retriever)")


class GenerationConfig(_Strict):
    """Answer quality in ``eval``: a reader answers each test question from each system's top-k."""

    backend: str = Field("extractive", description="extractive | extractive:mode=sentence | hf:<model> | openai:<base_url>")
    k: int = Field(5, ge=1, description="retrieved passages given to the reader")
    prompt: str | None = Field(None, description="LM readers: template with {context} and {question} (default: uae.evaluation.readers.DEFAULT_PROMPT)")
    max_new_tokens: int = Field(32, ge=1, description="LM readers: most tokens generated per answer")


class TeacherMixConfig(_Strict):
    """How the utilities of several teachers become one target (``uae train --labels A --labels B``)."""

    weights: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        None, description="one weight per teacher, in --labels order (default: equal)")
    mode: Literal["mean_distribution", "mean_zscore"] = "mean_distribution"


class RunConfig(_Strict):
    """Everything ``uae run`` needs; relative paths are resolved against the config file."""

    data: str = Field(description="a BEIR folder with answers (corpus.jsonl, queries.jsonl, qrels/)")
    out: str = "runs/run"
    base_model: str = DEFAULT_ENCODER
    train_split: str = "train"
    compare_infonce_gold: bool = Field(True, description="also train plain InfoNCE on gold evidence")
    mining: MiningConfig = MiningConfig()
    labeling: LabelingConfig = LabelingConfig()
    evidence: bool = Field(True, description="use evidence labels (qrels) in training; false: learn from question-answer "
                           "pairs alone (mine without gold, rows by utility, select on utility; qrels are read only to evaluate)")
    targets: TargetConfig = TargetConfig()
    training: TrainingConfig = TrainingConfig()
    selection: SelectionConfig = SelectionConfig()
    eval: EvalConfig = EvalConfig()
    generation: GenerationConfig | None = Field(None, description="also score answers generated from each system's top-k")

    @property
    def out_dir(self) -> Path:
        return Path(self.out)


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read a YAML config; errors name the file and the field that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        raise DataError(path, None if line is None else line + 1, f"expected valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise DataError(path, None, "expected a mapping of settings at the top level")
    try:
        config = RunConfig(**raw)
    except ValidationError as err:
        raise DataError(path, None, f"invalid config ({validation_problems(err)})") from None
    base = path.parent
    updates = {"data": _resolve(base, config.data), "out": _resolve(base, config.out)}
    if Path(base / config.base_model).exists():
        updates["base_model"] = _resolve(base, config.base_model)
    return config.model_copy(update=updates)


def quickstart_config(data_dir: str | os.PathLike, out_dir: str | os.PathLike, steps: int | None = None) -> RunConfig:
    """``uae quickstart``: ``uae run`` with the library's defaults (those ``examples/config.yaml`` spells
    out) on the synthetic set (:func:`uae.data.synthetic.write_quickstart_data`); ``steps`` overrides
    the training length. It needs no network and no GPU.
    """
    training = TrainingConfig(steps=steps) if steps else TrainingConfig()
    return RunConfig(data=str(data_dir), out=str(out_dir), training=training)


def _resolve(base: Path, value: str) -> str:
    path = Path(value)
    return str(path if path.is_absolute() else (base / path))
