"""UM-InfoNCE with soft targets against an independent per-query loop, values and gradients.

The reference below is written from the loss's definition, with plain Python loops over
queries and candidates and torch only for scalar arithmetic (so autograd gives its gradients).
It shares no helper with ``uae.training.losses``:

    L(q_i) = (1 - lam) * sum_{k} p*_i(k) * (logZ_i - s(q_i, d_{i,k}))
             + lam * (logZ_i - s(q_i, d_{i, argmax p*_i})),
    s(q, d) = cos(q, d) / tau_s,   logZ_i = log sum_{c in C(i)} exp(s(q_i, c)),

where C(i) is every pool passage of the batch (with in-batch negatives) or query i's own pool
(without), and the batch loss is the mean of L(q_i). Passages of other queries' pools carry no
target, even when their embedding equals one in query i's own pool.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from uae.training.losses import UtilityModulatedInfoNCE

B, K, D = 3, 4, 6
TOLERANCE = 1e-6


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine of two 1-D vectors, written out."""
    dot = sum(a[t] * b[t] for t in range(a.shape[0]))
    norm_a = torch.sqrt(sum(a[t] * a[t] for t in range(a.shape[0])))
    norm_b = torch.sqrt(sum(b[t] * b[t] for t in range(b.shape[0])))
    return dot / (norm_a * norm_b)


def first_argmax(row: list[float]) -> int:
    best = 0
    for k, value in enumerate(row):
        if value > row[best]:
            best = k
    return best


def reference_loss(
    query: Tensor, passages: list[Tensor], targets: list[list[float]], tau_s: float, in_batch: bool, hard_mix: float
) -> Tensor:
    """The batch mean of L(q_i), one query and one candidate at a time."""
    total = torch.zeros((), dtype=query.dtype)
    for i in range(query.shape[0]):
        owners = range(query.shape[0]) if in_batch else [i]
        # (owner query j, pool position k, score) for every candidate of query i
        candidates = [(j, k, cosine(query[i], passages[k][j]) / tau_s) for j in owners for k in range(len(passages))]
        peak = max(score.detach().item() for _, _, score in candidates)  # for a stable log-sum-exp
        log_z = peak + torch.log(sum(torch.exp(score - peak) for _, _, score in candidates))
        own = {k: score for j, k, score in candidates if j == i}
        soft = sum(targets[i][k] * (log_z - own[k]) for k in range(len(passages)))
        hard = log_z - own[first_argmax(targets[i])]
        total = total + (1.0 - hard_mix) * soft + hard_mix * hard
    return total / query.shape[0]


def soft_targets(seed: int) -> list[list[float]]:
    """Random distributions over each pool, with some exact zeros (one row keeps a single non-zero)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(B):
        weights = torch.rand(K, generator=generator, dtype=torch.float64).tolist()
        zeros = {i % K} if i < B - 1 else set(range(K)) - {1}
        weights = [0.0 if k in zeros else w for k, w in enumerate(weights)]
        total = math.fsum(weights)
        rows.append([w / total for w in weights])
    return rows


def embeddings(seed: int, duplicate: bool) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    columns = [torch.randn(B, D, generator=generator, dtype=torch.float64) for _ in range(K + 1)]
    if duplicate:  # query 1's passage 2 is query 0's passage 0: a negative for query 0, a pool passage for 1
        columns[1 + 2][1] = columns[1 + 0][0]
    return [c.requires_grad_() for c in columns]


CASES = [
    # (in-batch negatives, hard_mix, tau_s, duplicate passage)
    (True, 0.0, 0.05, False),
    (True, 0.0, 0.1, True),
    (True, 0.3, 0.05, False),
    (False, 0.0, 0.05, False),
    (False, 0.3, 0.2, True),
    (True, 1.0, 0.05, False),
]


@pytest.mark.parametrize(("in_batch", "hard_mix", "tau_s", "duplicate"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_um_infonce_with_soft_targets_matches_per_query_loop(
    in_batch: bool, hard_mix: float, tau_s: float, duplicate: bool, seed: int
) -> None:
    targets = soft_targets(seed)
    assert all(abs(math.fsum(row) - 1.0) < 1e-12 for row in targets) and any(0.0 in row for row in targets)
    loss_fn = UtilityModulatedInfoNCE(None, tau_s=tau_s, in_batch_negatives=in_batch, hard_mix=hard_mix)

    ours = embeddings(seed, duplicate)
    value = loss_fn.compute_loss_from_embeddings(ours, torch.tensor(targets, dtype=torch.float64))
    grads = torch.autograd.grad(value, ours)

    theirs = embeddings(seed, duplicate)
    expected = reference_loss(theirs[0], theirs[1:], targets, tau_s, in_batch, hard_mix)
    expected_grads = torch.autograd.grad(expected, theirs)

    assert value.dtype == torch.float64
    assert abs(value.item() - expected.item()) < TOLERANCE
    for got, want in zip(grads, expected_grads):
        assert torch.allclose(got, want, rtol=0.0, atol=TOLERANCE)
    assert any(g.abs().max() > 1e-3 for g in expected_grads)  # the comparison is not of zeros


def test_in_batch_negatives_change_the_loss() -> None:
    """Guards the reference itself: the two candidate sets give different values."""
    targets, columns = soft_targets(0), embeddings(0, duplicate=False)
    with_batch = reference_loss(columns[0], columns[1:], targets, 0.05, True, 0.0)
    own_pool = reference_loss(columns[0], columns[1:], targets, 0.05, False, 0.0)
    assert with_batch.item() > own_pool.item() + 1e-3  # more candidates in the softmax: a larger loss
