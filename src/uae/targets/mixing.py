"""What training learns from: one teacher's utilities, or several teachers mixed into one target.

:func:`combine_teacher_utilities` merges teachers' utilities into one target per query;
:func:`mixed_training_utilities` turns that into the utilities and targets config the training
rows are built from; :func:`load_training_labels` does it all for labels folders (``uae train
--labels A [--labels B ...]``) and records the mixture for the model card.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from uae.config import TargetConfig, TeacherMixConfig
from uae.data.schema import SkipReport
from uae.labeling.jobs import teacher_name
from uae.targets.distributions import CONSTANT_ATOL, target_distribution
from uae.targets.utilities import utilities_from_labels

Utilities = dict[str, dict[str, float]]
"""``{query_id: {passage_id: utility}}``."""

CombineMode = Literal["mean_distribution", "mean_zscore"]
"""How :func:`combine_teacher_utilities` merges teachers."""

TeacherUtilities = Mapping[str, Mapping[str, Mapping[str, float]]]
"""``{teacher: {query_id: {passage_id: utility}}}``."""


def teacher_weights(teachers: Sequence[str], weights: Mapping[str, float] | Sequence[float] | None) -> np.ndarray:
    """One non-negative weight per teacher, in ``teachers`` order (equal when ``weights`` is ``None``).

    Raises:
        ValueError: a count or name that does not match, a negative weight, or weights summing to 0.
    """
    if weights is None:
        values = [1.0] * len(teachers)
    elif isinstance(weights, Mapping):
        if set(weights) != set(teachers):
            raise ValueError(f"teacher weights name {sorted(weights)}, but the teachers are {list(teachers)}")
        values = [float(weights[t]) for t in teachers]
    else:
        values = [float(w) for w in weights]
        if len(values) != len(teachers):
            raise ValueError(f"{len(values)} teacher weight(s) for {len(teachers)} teachers {list(teachers)}")
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(array < 0) or array.sum() <= 0:
        raise ValueError(f"teacher weights must be finite, non-negative and not all 0, got {values}")
    return array / array.sum()


def _teacher_rows(query_id: str, per_teacher: TeacherUtilities, names: list[str]) -> tuple[list[str], np.ndarray]:
    """The query's passages (first teacher's order) and a ``[teacher, passage]`` utility matrix."""
    order = list(per_teacher[names[0]][query_id])
    for name in names[1:]:
        if set(per_teacher[name][query_id]) != set(order):
            raise ValueError(f"query {query_id!r}: teachers {names[0]!r} and {name!r} scored different passages; "
                             "label the same pools with every teacher")
    rows = np.array([[per_teacher[name][query_id][pid] for pid in order] for name in names], dtype=np.float64)
    if not np.all(np.isfinite(rows)):
        raise ValueError(f"query {query_id!r}: utilities must be finite")
    return order, rows


def _mean_distribution(rows: np.ndarray, weights: np.ndarray, config: TargetConfig) -> np.ndarray | None:
    per_teacher = config.model_copy(update={"top_m": None})
    uniform = np.full(rows.shape[1], 1.0 / rows.shape[1])
    distributions = [target_distribution(row, per_teacher) for row in rows]
    combined = weights @ np.stack([uniform if d is None else d for d in distributions])
    final = config.model_copy(update={"tau_t": 1.0, "normalize": "none", "harmful_floor": None})
    return target_distribution(np.log(np.maximum(combined, np.finfo(np.float64).tiny)), final)


def _mean_zscore(rows: np.ndarray, weights: np.ndarray, config: TargetConfig) -> np.ndarray | None:
    if config.harmful_floor is not None:
        rows = np.maximum(rows, config.harmful_floor)
    spread = rows.std(axis=1, keepdims=True)
    constant = (rows.max(axis=1) - rows.min(axis=1) <= CONSTANT_ATOL)[:, None]
    z = np.where(constant, 0.0, (rows - rows.mean(axis=1, keepdims=True)) / np.where(constant, 1.0, spread))
    return target_distribution(weights @ z, config.model_copy(update={"harmful_floor": None}))


def combine_teacher_utilities(
    per_teacher: TeacherUtilities,
    weights: Mapping[str, float] | Sequence[float] | None,
    mode: CombineMode,
    config: TargetConfig,
) -> tuple[dict[str, dict[str, float]], SkipReport]:
    """One target distribution per query from several teachers' utilities.

    ``mean_distribution``: each teacher's ``p*_t`` (floor, z-normalisation, softmax at ``tau_t``
    as in :func:`target_distribution`), then ``p* = sum_t w_t p*_t``. ``mean_zscore``: each
    teacher's utilities floored and z-normalised over the pool, ``z = sum_t w_t z_t``, then
    ``p* = softmax(z / tau_t)`` (``config.normalize="zscore"`` re-standardises ``z``). A teacher
    whose utilities for a query are all equal has no preference there: a uniform ``p*_t``, or
    ``z_t = 0``. In both modes ``top_m`` truncates the *combined* target. Weights are
    normalised to sum to 1.

    Args:
        per_teacher: ``{teacher: {query_id: {passage_id: utility}}}``, at least one teacher.
        weights: one per teacher (a sequence in ``per_teacher`` order, or a mapping by name);
            ``None`` for equal weights.
        mode: ``"mean_distribution"`` or ``"mean_zscore"``.
        config: the transform of :class:`TargetConfig`.

    Returns:
        ``({query_id: {passage_id: probability}}, skip report)``, passages in the first teacher's
        order. Skipped and counted: queries some teacher did not label ("not labeled by every
        teacher") and queries whose combined target is constant ("constant combined utilities").

    Raises:
        ValueError: no teacher, bad weights, an unknown mode, teachers that scored different
            passages for one query, or a non-finite utility.
    """
    names = list(per_teacher)
    if not names:
        raise ValueError("combine_teacher_utilities needs at least one teacher")
    combine = {"mean_distribution": _mean_distribution, "mean_zscore": _mean_zscore}.get(mode)
    if combine is None:
        raise ValueError(f"mode must be 'mean_distribution' or 'mean_zscore', got {mode!r}")
    w = teacher_weights(names, weights)
    targets: dict[str, dict[str, float]] = {}
    skipped = SkipReport()
    for query_id in dict.fromkeys(qid for name in names for qid in per_teacher[name]):
        if any(query_id not in per_teacher[name] for name in names):
            skipped.add("not labeled by every teacher", query_id)
            continue
        order, rows = _teacher_rows(query_id, per_teacher, names)
        target = combine(rows, w, config) if order else None
        if target is None:
            skipped.add("constant combined utilities", query_id)
            continue
        targets[query_id] = dict(zip(order, map(float, target)))
    return targets, skipped


def targets_as_utilities(targets: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """``log p`` of each target, so ``build_targets`` at ``tau_t=1`` (no floor, no z-score) gives ``p`` back.

    ``softmax(log p) = p`` because ``p`` sums to 1; probabilities of 0 (top-m truncation) become
    the log of the smallest positive float, so they come back as (at most) 1e-308. This is how
    combined targets reach the training rows, which build targets from utilities.
    """
    tiny = np.finfo(np.float64).tiny
    return {qid: {pid: float(np.log(max(p, tiny))) for pid, p in row.items()} for qid, row in targets.items()}


def load_teacher_utilities(paths: Sequence[str | os.PathLike], aggregate: Literal["mean", "max"] = "mean") -> tuple[dict[str, Utilities], dict[str, SkipReport]]:
    """``{teacher: utilities}`` for several labels folders, in order; a repeated name gets ``#2``, ``#3``.

    Returns:
        The utilities and, per teacher, what :func:`uae.targets.utilities.utilities_from_nlls` skipped.
    """
    per_teacher: dict[str, Utilities] = {}
    skipped: dict[str, SkipReport] = {}
    for path in paths:
        name = base = teacher_name(path)
        copy = 2
        while name in per_teacher:
            name, copy = f"{base}#{copy}", copy + 1
        per_teacher[name], skipped[name] = utilities_from_labels(path, aggregate)
    return per_teacher, skipped


def mixed_training_utilities(per_teacher: Mapping[str, Utilities], weights: Sequence[float] | None, mode: str,
                             targets: TargetConfig) -> tuple[Utilities, TargetConfig, SkipReport]:
    """Training input for several teachers: combined targets as ``log p``, and the targets config that reproduces them.

    :func:`uae.training.rows.build_training_rows` builds targets from utilities with a targets config;
    this returns ``log p*`` of the combined target (:func:`combine_teacher_utilities`
    without top-m) and a config at ``tau_t=1`` with no floor or z-score and the original
    ``top_m``, so the rows hold exactly the combined ``p*`` (``softmax(log p) = p``) truncated
    as asked. For ``margin_mse`` the rows then hold ``log p*``, whose margins are the combined
    utilities' margins divided by ``tau_t``. The confidence rule is off in that config: ``log p``
    is no utility in nats, and each teacher's target was already built with the rules asked for.

    Args:
        per_teacher: ``{teacher: utilities}``.
        weights: one per teacher, in order; ``None`` for equal weights.
        mode: ``"mean_distribution"`` or ``"mean_zscore"``.
        targets: a :class:`uae.config.TargetConfig`.

    Returns:
        ``(utilities, targets config, skip report)``.
    """
    combined, skipped = combine_teacher_utilities(per_teacher, weights, mode, targets.model_copy(update={"top_m": None}))
    rows_config = targets.model_copy(update={"tau_t": 1.0, "normalize": "none", "harmful_floor": None, "confidence": "none"})
    return targets_as_utilities(combined), rows_config, skipped


@dataclass
class TrainingLabels:
    """What a model is trained on, from labels folders.

    Attributes:
        utilities: ``{query_id: {passage_id: utility}}``; for several teachers, ``log p*`` of their mixture.
        targets: The targets config that turns ``utilities`` into the rows' targets.
        teacher: The teacher's name (``A+B`` for a mixture), for stage keys and model cards.
        record: Entries for the model's ``uae_training.json`` (the mixture, when there is one).
        skipped: What each step left out, by the name a report gives it.
    """

    utilities: Utilities
    targets: TargetConfig
    teacher: str
    record: dict = field(default_factory=dict)
    skipped: dict[str, SkipReport] = field(default_factory=dict)


def load_training_labels(labels: Sequence[str | os.PathLike], aggregate: Literal["mean", "max"], targets: TargetConfig,
                         mix: TeacherMixConfig | None = None) -> TrainingLabels:
    """The utilities of one labels folder, or the mixture of several teachers' (:func:`mixed_training_utilities`).

    Args:
        labels: Labels folders from ``uae label`` (or their ``nlls.parquet``), at least one.
        aggregate: ``"mean"`` or ``"max"`` over a query's answers.
        targets: The targets config asked for.
        mix: How several teachers are weighted and combined (default: equal weights, ``mean_distribution``).
    """
    if len(labels) == 1:
        utilities, skipped = utilities_from_labels(labels[0], aggregate)
        return TrainingLabels(utilities, targets, teacher_name(labels[0]), {}, {"utilities": skipped})
    mix = mix or TeacherMixConfig()
    per_teacher, skips = load_teacher_utilities(labels, aggregate)
    utilities, rows_targets, combined = mixed_training_utilities(per_teacher, mix.weights, mix.mode, targets)
    record = {"teacher": {"teachers": list(per_teacher), "weights": mix.weights, "mode": mix.mode, "targets": targets.model_dump()}}
    skipped = {**{f"utilities ({name})": report for name, report in skips.items()}, "combined teachers": combined}
    return TrainingLabels(utilities, rows_targets, "+".join(per_teacher), record, skipped)
