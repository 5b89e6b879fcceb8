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

from collections.abc import Iterable, Sequence
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
    """How utilities become a target distribution, applied in the order listed below.

    Attributes:
        harmful_floor: utilities below this value are raised to it, so that passages that
            mislead the teacher cannot push every other passage's share up without bound;
            ``None`` applies no floor.
        normalize: ``"zscore"`` standardises the utilities of each query over its pool
            (robust to perplexity noise that differs between queries); ``"none"`` keeps them.
        tau_t: teacher temperature of the softmax; smaller is sharper.
        top_m: keep only the ``m`` highest-utility passages (ties: earlier in the pool wins);
            the others get a target of exactly 0. ``None`` keeps all.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tau_t: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    normalize: Literal["none", "zscore"] = "none"
    harmful_floor: float | None = Field(default=None, allow_inf_nan=False)
    top_m: int | None = Field(default=None, ge=1)


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
