"""Training rows: what one training example holds about a query and its pool.

Each training row is ``(query, p_1, ..., p_K, label)``: the query, ``K`` passages of its pool and
what the loss needs about them (the target over the row, the raw utilities, or the gold marks;
see ``Loss.label_kind`` and :func:`uae.targets.distributions.row_target`).

A row keeps at most ``max_gold`` gold passages (the most useful ones first when the teacher's
utilities are known, else the best-ranked) and fills the rest with the best-ranked other
passages, so every row has hard negatives whatever the loss; without that, on data with many
gold passages per question (QMSum: 11 on average) a row would hold nothing but gold. The
label-free selections (``rank``, ``utility_first``) never look at the gold flags.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from uae.config import TargetConfig
from uae.data.schema import Corpus, Query, SkipReport
from uae.data.tables import Candidate, Pools
from uae.targets.distributions import confidence_threshold, row_target


@dataclass
class TrainingRows:
    """The columns handed to the trainer, what was left out, and what the target rules changed."""

    queries: list[str]
    pools: list[list[str]]
    labels: list[list[float]]
    skipped: SkipReport
    adjusted: Counter = field(default_factory=Counter)
    """Rows the target rules changed: ``down-weighted``, ``softened``, ``gold masked``, ``gold floored``."""
    confidence_threshold: float | None = None
    """The confidence rule's threshold ``c`` (nats per answer token), when it applies."""

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
    fill_with_gold: bool = False,
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
        fill_with_gold: when a ``gold_first`` pool has too few other passages (on QMSum every one
            of a pool of 16 can be evidence), fill the row with the remaining gold passages, most
            useful first, rather than leave it short. Right for utility targets, whose graded
            utilities tell gold passages apart (the gold rule masks the useless ones); wrong for
            a loss on gold flags, where a row of positives only teaches nothing.
    """
    if selection == "gold_first":
        gold = [c for c in candidates if c.is_gold]
        if utilities:
            gold = sorted(gold, key=lambda c: -utilities.get(c.passage_id, -np.inf))
        first = gold[: min(size, max_gold or size)]
        others = [c for c in candidates if not c.is_gold]
        if fill_with_gold:
            others += gold[len(first):]
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
    use ``gold_first`` (short pools padded), utility rows fill a short ``gold_first`` row with
    the remaining gold passages before padding. The gold flags reach the targets (the ``gold`` rule of
    :class:`uae.config.TargetConfig`) only under ``gold_first``.
    """
    rng = random.Random(seed)
    rows = TrainingRows([], [], [], SkipReport())
    rule = "gold_first" if label_kind == "gold" else selection
    chosen = {query.id: select_pool(pools.get(query.id, []), pool_size, rule, (utilities or {}).get(query.id), max_gold,
                                    fill_with_gold=label_kind != "gold")
              for query in queries}
    threshold = confidence_threshold(
        [max(utilities[q][c.passage_id] for c in row) for q, row in chosen.items()
         if row and q in (utilities or {}) and all(c.passage_id in utilities[q] for c in row)], targets,
    ) if label_kind == "distribution" else None
    rows.confidence_threshold = threshold
    for query in queries:
        candidates = chosen[query.id]
        if not candidates:
            rows.skipped.add("no candidate pool", query.id)
            continue
        label = _label_for(query, candidates, label_kind, (utilities or {}).get(query.id), targets, rule == "gold_first",
                           threshold, rows)
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
               targets: TargetConfig, use_gold: bool, threshold: float | None, rows: TrainingRows) -> list[float] | None:
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
    target = row_target(values, [c.is_gold for c in candidates] if use_gold else None, targets, threshold)
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
