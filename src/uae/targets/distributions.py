"""From utilities to target distributions, and the training label of one query.

The target of a query is

    p*(d) = softmax_d(u(d) / tau_t)    over its pool P(q),

with the options of :class:`uae.config.TargetConfig` (floor, z-normalisation, top-m truncation);
:func:`row_target` adds the confidence rule and the gold rule for one training row. Queries
whose utilities are all equal carry no signal; they are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uae.config import TargetConfig
from uae.data.schema import SkipReport

CONSTANT_ATOL = 1e-9
"""Utilities closer than this (max - min) count as all equal."""


def stable_softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax with max subtraction: finite for any finite input.

    Args:
        logits: a 1-D array of finite values.

    Returns:
        Probabilities of the same shape, summing to 1.
    """
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def _zscore(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


def _keep_top_m(probs: np.ndarray, utilities: np.ndarray, m: int) -> np.ndarray:
    keep = np.argsort(-utilities, kind="stable")[:m]
    truncated = np.zeros_like(probs)
    truncated[keep] = probs[keep]
    return truncated / truncated.sum()


def target_distribution(utilities: Sequence[float] | np.ndarray, config: TargetConfig) -> np.ndarray | None:
    """The target ``p*`` over one query's pool.

    Steps, in order: floor, z-normalisation, softmax at ``tau_t``, top-m truncation with
    renormalisation. The "all equal" test runs after the floor (a pool that is uniformly
    harmful once floored carries no signal either).

    Args:
        utilities: one utility per pool passage, in pool order.
        config: the transform options.

    Returns:
        A float64 array summing to 1, or ``None`` when all utilities are equal within 1e-9.

    Raises:
        ValueError: on an empty pool or a non-finite utility.
    """
    values = np.asarray(utilities, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("cannot build a target over an empty pool")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"utilities must be finite, got {values.tolist()}")
    if config.harmful_floor is not None:
        values = np.maximum(values, config.harmful_floor)
    if values.max() - values.min() <= CONSTANT_ATOL:
        return None
    ranked = values
    if config.normalize == "zscore":
        values = _zscore(values)
    probs = stable_softmax(values / config.tau_t)
    if config.top_m is not None and config.top_m < probs.size:
        probs = _keep_top_m(probs, ranked, config.top_m)
    return probs


def _pool_utilities(query_id: str, pool: list[str], utilities: dict[str, float]) -> list[float]:
    missing = [pid for pid in pool if pid not in utilities]
    if missing:
        raise ValueError(f"query {query_id!r}: pool passages without a utility: {missing[:5]}")
    return [utilities[pid] for pid in pool]


def build_targets(
    utilities: dict[str, dict[str, float]],
    pools_order: dict[str, list[str]],
    config: TargetConfig,
) -> tuple[dict[str, np.ndarray], SkipReport]:
    """Target distributions over each query's pool, in pool order.

    Args:
        utilities: ``{query_id: {passage_id: utility}}`` from :func:`utilities_from_nlls`.
        pools_order: ``{query_id: [passage_id, ...]}`` in pool order.
        config: the transform options.

    Returns:
        ``({query_id: target array}, skip report)``. Skipped and counted: queries with
        constant utilities, pooled queries without utilities ("no utilities"), empty pools,
        and queries with utilities but no pool ("no pool").

    Raises:
        ValueError: when a pool passage of a query that has utilities lacks one.
    """
    targets: dict[str, np.ndarray] = {}
    skipped = SkipReport()
    for query_id, pool in pools_order.items():
        if query_id not in utilities:
            skipped.add("no utilities", query_id)
            continue
        if not pool:
            skipped.add("empty pool", query_id)
            continue
        target = target_distribution(_pool_utilities(query_id, pool, utilities[query_id]), config)
        if target is None:
            skipped.add("constant utilities", query_id)
            continue
        targets[query_id] = target
    for query_id in utilities:
        if query_id not in pools_order:
            skipped.add("no pool", query_id)
    return targets, skipped


# ---- one training row ------------------------------------------------------------------------

MASKED = -1.0
"""A row entry that leaves its passage out of the query's softmax (``uae.training.losses.MASKED``)."""


@dataclass(frozen=True)
class RowTarget:
    """The label row of one training query, or why there is none.

    Attributes:
        values: target mass per row passage (summing to ``weight``), :data:`MASKED` for passages
            left out of the softmax; ``None`` when the query is skipped.
        skip: why the query is skipped (``None`` when it is not).
        weight: the query's loss weight in ``(0, 1]``.
        softened: the confidence rule raised the query's temperature.
        masked: gold passages left out of the softmax by the ``"mask"`` rule.
        floored: the ``"floor"`` rule raised the gold passages' share.
    """

    values: np.ndarray | None
    skip: str | None = None
    weight: float = 1.0
    softened: bool = False
    masked: int = 0
    floored: bool = False


def confidence_threshold(best_utilities: Sequence[float], config: TargetConfig) -> float | None:
    """The threshold ``c`` of the confidence rule for a set of training queries (``None`` with rule ``"none"``).

    Args:
        best_utilities: the best utility of each training query's row.
        config: the target options (``confident_utility`` if set, else ``confidence_quantile``).
    """
    if config.confidence == "none":
        return None
    if config.confident_utility is not None:
        return config.confident_utility
    helpful = [u for u in best_utilities if u > 0]
    return float(np.quantile(helpful, config.confidence_quantile)) if helpful else None


def row_target(utilities: Sequence[float], gold: Sequence[bool] | None, config: TargetConfig,
               threshold: float | None = None) -> RowTarget:
    """The training label of one query: its target over the row, the confidence rule, the gold rule.

    Args:
        utilities: the utility of each row passage, in row order.
        gold: which row passages are marked as evidence; ``None`` when no evidence labels are
            used (then the gold rule does nothing).
        config: the target options.
        threshold: the confidence threshold ``c`` (:func:`confidence_threshold`); ``None`` leaves
            only the "no passage helps" part of the rule.

    Returns:
        A :class:`RowTarget`; its ``values`` are ready for the ``"distribution"`` losses.
    """
    values = np.asarray(utilities, dtype=np.float64)
    best = float(values.max()) if values.size else 0.0
    if config.confidence != "none" and best <= 0:
        return RowTarget(None, "no passage helps the teacher (best utility <= 0)")
    unsure = config.confidence != "none" and threshold is not None and best < threshold
    if unsure and config.confidence == "skip":
        return RowTarget(None, "low confidence (best utility below the confidence threshold)")
    tau = config.tau_t * threshold / best if unsure and config.confidence == "soften" else config.tau_t
    target = target_distribution(values, config.model_copy(update={"tau_t": tau}))
    if target is None:
        return RowTarget(None, "constant utilities")
    weight = best / threshold if unsure and config.confidence == "weight" else 1.0
    masked, floored = 0, False
    if gold is not None and any(gold) and config.gold != "none":
        flags = np.asarray(gold, dtype=bool)
        if config.gold == "mask":
            target, masked = _mask_useless_gold(target, flags)
            if target is None:
                return RowTarget(None, "no target left once useless gold passages are masked")
        else:
            target, floored = _floor_gold(target, flags, config.gold_floor)
    return RowTarget(np.where(target == MASKED, MASKED, target * weight), None, weight, unsure and config.confidence == "soften",
                     masked, floored)


def _mask_useless_gold(target: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Mask gold passages whose target is below the uniform share; renormalise the rest."""
    useless = gold & (target < 1.0 / target.size)
    if not useless.any():
        return target, 0
    kept = np.where(useless, 0.0, target)
    if kept.sum() <= 0:
        return None, int(useless.sum())
    return np.where(useless, MASKED, kept / kept.sum()), int(useless.sum())


def _floor_gold(target: np.ndarray, gold: np.ndarray, share: float) -> tuple[np.ndarray, bool]:
    """Raise the gold passages' total to ``share`` (the deficit spread evenly over them), scaling the others down."""
    total = float(target[gold].sum())
    if total >= share:
        return target, False
    raised = np.where(gold, target + (share - total) / gold.sum(), target * (1.0 - share) / (1.0 - total))
    return raised, True
