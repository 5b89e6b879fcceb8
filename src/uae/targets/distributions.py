"""From raw answer NLLs to utilities, and from utilities to target distributions.

The utility of a passage ``d`` for a query ``q`` with gold answer ``a`` is the drop in the
teacher's NLL per answer token when ``d`` is put in the prompt::

    u(d) = nll(a | q) - nll(a | q, d)

aggregated over the query's answers by ``mean`` or ``max``. The target of a query is then

    p*(d) = softmax_d(u(d) / tau_t)    over its pool P(q),

with the options of :class:`TargetConfig` (floor, z-normalisation, top-m truncation).
Queries whose utilities are all equal carry no signal; they are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from uae.data.schema import SkipReport
from uae.data.tables import NO_PASSAGE, NLLRecord

CONSTANT_ATOL = 1e-9
"""Utilities closer than this (max - min) count as all equal."""

NLLTable = dict[str, dict[str, dict[int, float]]]
"""``{query_id: {passage_id: {answer_index: nll}}}``."""


def group_nlls(records: Iterable[NLLRecord]) -> NLLTable:
    """Index NLL records by query, passage and answer.

    Args:
        records: NLL rows, with ``passage_id == NO_PASSAGE`` for the question-only prompt.

    Returns:
        ``{query_id: {passage_id: {answer_index: nll}}}``.

    Raises:
        ValueError: when two rows share a (query, passage, answer) key.
    """
    table: NLLTable = {}
    for record in records:
        answers = table.setdefault(record.query_id, {}).setdefault(record.passage_id, {})
        if record.answer_index in answers:
            raise ValueError(
                f"duplicate NLL row for query {record.query_id!r}, passage {record.passage_id!r}, "
                f"answer {record.answer_index}"
            )
        answers[record.answer_index] = float(record.nll)
    return table


def _query_problem(rows: dict[str, dict[int, float]]) -> str | None:
    """Why a query's NLL rows cannot give utilities, or ``None`` when they can."""
    baseline = rows.get(NO_PASSAGE, {})
    passages = [pid for pid in rows if pid != NO_PASSAGE]
    if not passages:
        return "no passage rows"
    if any(set(rows[pid]) - set(baseline) for pid in passages):
        return "missing no-passage NLL"
    if any(set(baseline) - set(rows[pid]) for pid in passages):
        return "passage missing an answer's NLL"
    if not all(np.isfinite(nll) for answers in rows.values() for nll in answers.values()):
        return "non-finite NLL"
    return None


def _aggregate(values: list[float], aggregate: Literal["mean", "max"]) -> float:
    if aggregate == "mean":
        return float(np.mean(values))
    if aggregate == "max":
        return float(np.max(values))
    raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")


def query_utilities(
    rows: dict[str, dict[int, float]], aggregate: Literal["mean", "max"] = "mean"
) -> dict[str, float]:
    """Utilities of one query's passages from its checked NLL rows.

    Args:
        rows: ``{passage_id: {answer_index: nll}}``, including the ``NO_PASSAGE`` row.
        aggregate: how to combine the per-answer utilities of a passage.

    Returns:
        ``{passage_id: utility}`` for every passage row.
    """
    baseline = rows[NO_PASSAGE]
    return {
        pid: _aggregate([baseline[a] - nll for a, nll in sorted(answers.items())], aggregate)
        for pid, answers in rows.items()
        if pid != NO_PASSAGE
    }


def utilities_from_nlls(
    records: Iterable[NLLRecord], aggregate: Literal["mean", "max"] = "mean"
) -> tuple[dict[str, dict[str, float]], SkipReport]:
    """Turn raw NLL rows into per-passage utilities, ``u(d) = nll(a|q) - nll(a|q,d)``.

    A query is skipped (and counted, with its reason) when it has no passage rows, when a
    passage answer lacks its no-passage NLL, when a passage lacks one of the answers the
    no-passage row has, or when an NLL is not finite.

    Args:
        records: NLL rows of any number of queries, in any order.
        aggregate: ``"mean"`` or ``"max"`` over a query's answers.

    Returns:
        ``({query_id: {passage_id: utility}}, skip report)``.

    Raises:
        ValueError: on duplicate (query, passage, answer) rows or an unknown ``aggregate``.
    """
    if aggregate not in ("mean", "max"):
        raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
    utilities: dict[str, dict[str, float]] = {}
    skipped = SkipReport()
    for query_id, rows in group_nlls(records).items():
        problem = _query_problem(rows)
        if problem is not None:
            skipped.add(problem, query_id)
            continue
        utilities[query_id] = query_utilities(rows, aggregate)
    return utilities, skipped


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
            utility, in nats per answer token, is below ``confident_utility``): ``"weight"``
            scales the query's loss by ``u_max / confident_utility``, ``"soften"`` raises its
            temperature to ``tau_t * confident_utility / u_max``, ``"skip"`` drops it, ``"none"``
            trusts every query alike. Under every rule but ``"none"`` a query where no passage
            helps at all (``u_max <= 0``) is skipped. A sharp target on such a query teaches noise.
        confident_utility: the utility of the best passage at which a query is fully trusted.
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
        "weight", description="queries whose best passage helps less than confident_utility: weight | soften | skip | none")
    confident_utility: float = Field(1.0, gt=0, allow_inf_nan=False, description="nats per answer token at which a query is fully trusted")
    gold: Literal["mask", "floor", "none"] = Field("mask", description="gold passages the teacher finds useless: mask | floor | none")
    gold_floor: float = Field(0.5, gt=0, le=1, description="the floor rule: share of the target the row's gold passages get at least")


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
"""A row entry that leaves its passage out of the query's softmax (``uae.losses.MASKED``)."""


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


def confidence_temperature(best: float, config: TargetConfig) -> float:
    """``tau_t``, raised for a query whose best passage helps less than ``confident_utility`` (``"soften"``)."""
    if config.confidence != "soften" or best >= config.confident_utility:
        return config.tau_t
    return config.tau_t * config.confident_utility / best


def row_target(utilities: Sequence[float], gold: Sequence[bool] | None, config: TargetConfig) -> RowTarget:
    """The training label of one query: its target over the row, the confidence rule, the gold rule.

    Args:
        utilities: the utility of each row passage, in row order.
        gold: which row passages are marked as evidence; ``None`` when no evidence labels are
            used (then the gold rule does nothing).
        config: the target options.

    Returns:
        A :class:`RowTarget`; its ``values`` are ready for the ``"distribution"`` losses.
    """
    values = np.asarray(utilities, dtype=np.float64)
    best = float(values.max()) if values.size else 0.0
    if config.confidence != "none" and best <= 0:
        return RowTarget(None, "no passage helps the teacher (best utility <= 0)")
    if config.confidence == "skip" and best < config.confident_utility:
        return RowTarget(None, f"low confidence (best utility < {config.confident_utility})")
    tau = confidence_temperature(best, config)
    target = target_distribution(values, config.model_copy(update={"tau_t": tau}))
    if target is None:
        return RowTarget(None, "constant utilities")
    weight = min(1.0, best / config.confident_utility) if config.confidence == "weight" else 1.0
    masked, floored = 0, False
    if gold is not None and any(gold) and config.gold != "none":
        flags = np.asarray(gold, dtype=bool)
        if config.gold == "mask":
            target, masked = _mask_useless_gold(target, flags)
            if target is None:
                return RowTarget(None, "no target left once useless gold passages are masked")
        else:
            target, floored = _floor_gold(target, flags, config.gold_floor)
    return RowTarget(np.where(target == MASKED, MASKED, target * weight), None, weight, tau != config.tau_t, masked, floored)


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


# ---- several teachers ------------------------------------------------------------------------

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
