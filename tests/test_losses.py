"""The pool losses on hand-made embeddings (no model is loaded)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from uae.training.losses import (
    LOSSES,
    GoldInfoNCE,
    HardUtilityInfoNCE,
    PoolKL,
    UtilityMarginMSE,
    UtilityModulatedInfoNCE,
    batch_cosines,
    candidate_targets,
    kl_divergence,
    pool_cosines,
    soft_cross_entropy,
)

B, K, D = 3, 4, 8


def random_batch(seed: int = 0, requires_grad: bool = True) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    columns = [torch.randn(B, D, generator=generator, dtype=torch.float64) for _ in range(K + 1)]
    return [c.requires_grad_(requires_grad) for c in columns]


def one_hot(index: list[int]) -> Tensor:
    return torch.nn.functional.one_hot(torch.tensor(index), K).double()


def query_grad(loss_fn: nn.Module, embeddings: list[Tensor], labels: Tensor) -> tuple[Tensor, list[Tensor]]:
    loss = loss_fn.compute_loss_from_embeddings(embeddings, labels)
    return loss, torch.autograd.grad(loss, embeddings)


def test_um_infonce_with_one_hot_target_equals_gold_infonce_values_and_gradients() -> None:
    labels = one_hot([2, 0, 3])
    soft = query_grad(UtilityModulatedInfoNCE(None), random_batch(), labels)
    gold = query_grad(GoldInfoNCE(None), random_batch(), labels)
    assert torch.allclose(soft[0], gold[0])
    for g_soft, g_gold in zip(soft[1], gold[1]):
        assert torch.allclose(g_soft, g_gold)


def test_gold_infonce_matches_hand_written_infonce() -> None:
    embeddings = random_batch(requires_grad=False)
    labels = one_hot([1, 1, 0])
    scores = batch_cosines(embeddings[0], embeddings[1:]) / 0.05
    positives = torch.tensor([0 * K + 1, 1 * K + 1, 2 * K + 0])
    expected = torch.nn.functional.cross_entropy(scores, positives)
    assert torch.allclose(GoldInfoNCE(None).compute_loss_from_embeddings(embeddings, labels), expected)


def reference_loss(embeddings: list[Tensor], labels: list[list[float]], tau_s: float = 0.05, separate: bool = False,
                   normalize: bool = False) -> float:
    """Multi-positive InfoNCE with in-batch negatives and masked entries, one query at a time, in plain Python.

    Query i's candidates: every pool passage of the batch except the ones its own row marks -1.
    Its positives are the entries of its own row that are > 0, weighted by their label (divided
    by the row's sum when ``normalize``). ``separate``: each positive's softmax holds itself and
    the zero-target candidates only.
    """
    queries = embeddings[0].detach().tolist()
    passages = [column.detach().tolist() for column in embeddings[1:]]

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b))
        return dot / math.sqrt(sum(x * x for x in a)) / math.sqrt(sum(y * y for y in b))

    total = 0.0
    for i, query in enumerate(queries):
        scores, weights = [], []
        for j in range(len(queries)):
            for k in range(len(passages)):
                label = labels[i][k] if j == i else 0.0
                if label == -1.0:
                    continue
                scores.append(cosine(query, passages[k][j]) / tau_s)
                weights.append(label)
        row_sum = sum(w for w in weights if w > 0)
        negatives = [s for s, w in zip(scores, weights) if w == 0]
        for score, weight in zip(scores, weights):
            if weight <= 0:
                continue
            pool = [score] + negatives if separate else scores
            log_p = score - math.log(sum(math.exp(s) for s in pool))
            total -= (weight / row_sum if normalize else weight) * log_p
    return total / len(queries)


def test_gold_infonce_spreads_the_positive_mass_over_every_gold_passage() -> None:
    embeddings = random_batch(requires_grad=False)
    marks = [[1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 1, 1]]
    expected = reference_loss(embeddings, marks, normalize=True)
    value = GoldInfoNCE(None).compute_loss_from_embeddings(embeddings, torch.tensor(marks, dtype=torch.float64))
    assert value.item() == pytest.approx(expected, rel=1e-9)


def test_gold_infonce_mask_mode_keeps_positives_out_of_each_others_softmax() -> None:
    embeddings = random_batch(requires_grad=False)
    marks = [[1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 1, 1]]
    expected = reference_loss(embeddings, marks, separate=True, normalize=True)
    value = GoldInfoNCE(None, multi_positive="mask").compute_loss_from_embeddings(embeddings, torch.tensor(marks, dtype=torch.float64))
    assert value.item() == pytest.approx(expected, rel=1e-9)
    spread = GoldInfoNCE(None).compute_loss_from_embeddings(embeddings, torch.tensor(marks, dtype=torch.float64))
    assert value.item() < spread.item()  # fewer terms in every positive's denominator


def test_masked_entries_leave_the_softmax_in_both_losses() -> None:
    embeddings = random_batch(requires_grad=False)
    gold = [[1, -1, 0, 0], [-1, 0, 1, -1], [1, 0, 0, 0]]
    value = GoldInfoNCE(None).compute_loss_from_embeddings(embeddings, torch.tensor(gold, dtype=torch.float64))
    assert value.item() == pytest.approx(reference_loss(embeddings, gold, normalize=True), rel=1e-9)
    soft = [[0.7, -1, 0.3, 0.0], [-1, 0.2, 0.8, -1], [0.25, 0.25, 0.25, 0.25]]
    value = UtilityModulatedInfoNCE(None).compute_loss_from_embeddings(embeddings, torch.tensor(soft, dtype=torch.float64))
    assert value.item() == pytest.approx(reference_loss(embeddings, soft), rel=1e-9)


def test_a_down_weighted_row_counts_with_its_weight() -> None:
    embeddings = random_batch(requires_grad=False)
    full = torch.tensor([[0.6, 0.4, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    halved = full.clone()
    halved[1] *= 0.5
    loss = UtilityModulatedInfoNCE(None)
    assert loss.compute_loss_from_embeddings(embeddings, halved).item() == pytest.approx(
        reference_loss(embeddings, halved.tolist()), rel=1e-9)
    assert loss.compute_loss_from_embeddings(embeddings, halved) < loss.compute_loss_from_embeddings(embeddings, full)


def test_masked_passage_gets_no_gradient_from_its_own_row() -> None:
    embeddings = random_batch()
    labels = torch.tensor([[1.0, -1.0, 0.0, 0.0]] * B, dtype=torch.float64)
    loss = UtilityModulatedInfoNCE(None, in_batch_negatives=False).compute_loss_from_embeddings(embeddings, labels)
    gradients = torch.autograd.grad(loss, embeddings)
    assert torch.count_nonzero(gradients[2]) == 0  # passage column 1 is masked in every row
    assert torch.count_nonzero(gradients[3]) > 0


def test_non_finite_loss_stops_the_forward_pass() -> None:
    from uae.errors import NonFiniteLoss

    embeddings = random_batch(requires_grad=False)
    embeddings[0] = torch.full_like(embeddings[0], float("nan"))
    with pytest.raises(NonFiniteLoss, match="not finite"):
        UtilityModulatedInfoNCE(ColumnStub())([{"embedding": e} for e in embeddings], one_hot([0, 1, 2]))


def test_gold_labels_without_a_mark_raise() -> None:
    labels = one_hot([1, 2, 0])
    labels[1] = 0.0
    with pytest.raises(ValueError, match="gold"):
        GoldInfoNCE(None).compute_loss_from_embeddings(random_batch(), labels)


def test_hard_utility_infonce_uses_argmax_of_distribution() -> None:
    embeddings = random_batch(requires_grad=False)
    dist = torch.tensor([[0.1, 0.2, 0.6, 0.1], [0.5, 0.2, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7]], dtype=torch.float64)
    hard = HardUtilityInfoNCE(None).compute_loss_from_embeddings(embeddings, dist)
    gold = GoldInfoNCE(None).compute_loss_from_embeddings(embeddings, one_hot([2, 0, 3]))
    assert torch.equal(hard, gold)


def test_hard_mix_interpolates_soft_and_hard() -> None:
    embeddings = random_batch(requires_grad=False)
    dist = torch.softmax(torch.randn(B, K, generator=torch.Generator().manual_seed(1), dtype=torch.float64), -1)
    soft = UtilityModulatedInfoNCE(None).compute_loss_from_embeddings(embeddings, dist)
    hard = HardUtilityInfoNCE(None).compute_loss_from_embeddings(embeddings, dist)
    mixed = UtilityModulatedInfoNCE(None, hard_mix=0.25).compute_loss_from_embeddings(embeddings, dist)
    assert torch.allclose(mixed, 0.75 * soft + 0.25 * hard)
    assert not torch.allclose(soft, hard)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_uniform_targets_give_finite_loss_and_gradients(name: str) -> None:
    loss_fn = LOSSES[name](None)
    labels = torch.full((B, K), 1.0 / K, dtype=torch.float64)
    embeddings = random_batch()
    loss, grads = query_grad(loss_fn, embeddings, labels)
    assert torch.isfinite(loss)
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("scale", [1e6, -1.0, 1e-9])
def test_margin_mse_finite_for_huge_negative_and_tiny_utilities(scale: float) -> None:
    utilities = scale * torch.tensor([[3.0, 1.0, 0.0, -2.0]] * B, dtype=torch.float64)
    loss, grads = query_grad(UtilityMarginMSE(None), random_batch(), utilities)
    assert torch.isfinite(loss)
    assert all(torch.isfinite(g).all() for g in grads)


def test_distribution_losses_finite_for_huge_embeddings_and_sharp_targets() -> None:
    embeddings = [(1e6 * e.detach()).requires_grad_() for e in random_batch()]
    peaked = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * B, dtype=torch.float64)
    for loss_fn in (UtilityModulatedInfoNCE(None, tau_s=1e-4), PoolKL(None, tau_s=1e-4)):
        loss, grads = query_grad(loss_fn, embeddings, peaked)
        assert torch.isfinite(loss)
        assert all(torch.isfinite(g).all() for g in grads)


def orthogonal_batch() -> list[Tensor]:
    """One query per row on axis 0, pool passage k on axis k+1: every cosine starts at 0."""
    eye = torch.eye(D, dtype=torch.float64)
    query = eye[0].repeat(B, 1).requires_grad_()
    return [query] + [eye[k + 1].repeat(B, 1) for k in range(K)]


LABELS_FOR_KIND = {
    # top passage is index 2 in every row
    "distribution": torch.tensor([[0.1, 0.2, 0.6, 0.1]] * B, dtype=torch.float64),
    "gold": torch.tensor([[0.0, 0.0, 1.0, 0.0]] * B, dtype=torch.float64),
    "utility": torch.tensor([[-1.0, 0.5, 2.0, 0.0]] * B, dtype=torch.float64),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_step_on_query_favours_top_utility_passage(name: str) -> None:
    loss_fn = LOSSES[name](None)
    embeddings = orthogonal_batch()
    labels = LABELS_FOR_KIND[loss_fn.label_kind]
    loss = loss_fn.compute_loss_from_embeddings(embeddings, labels)
    (grad,) = torch.autograd.grad(loss, embeddings[0])
    stepped = [(embeddings[0] - 0.01 * grad).detach()] + embeddings[1:]
    before = pool_cosines(embeddings[0].detach(), embeddings[1:])
    after = pool_cosines(stepped[0], stepped[1:])
    gain = after - before
    others = [0, 1, 3]
    assert (gain[:, 2:3] > gain[:, others]).all()
    assert (after[:, 2:3] > after[:, others]).all()


def test_in_batch_negatives_change_the_value_versus_pool_kl() -> None:
    embeddings = random_batch(requires_grad=False)
    dist = torch.softmax(torch.randn(B, K, generator=torch.Generator().manual_seed(2), dtype=torch.float64), -1)
    entropy = -(dist * dist.log()).sum(-1).mean()
    pool_kl = PoolKL(None).compute_loss_from_embeddings(embeddings, dist)
    own_pool = UtilityModulatedInfoNCE(None, in_batch_negatives=False).compute_loss_from_embeddings(embeddings, dist)
    in_batch = UtilityModulatedInfoNCE(None).compute_loss_from_embeddings(embeddings, dist)
    # own-pool cross-entropy is the pool KL plus the target entropy; the batch adds negatives on top
    assert torch.allclose(own_pool, pool_kl + entropy)
    assert in_batch > own_pool
    assert not torch.allclose(in_batch - entropy, pool_kl)


def test_pool_kl_is_zero_when_student_matches_target() -> None:
    embeddings = random_batch(requires_grad=False)
    student = torch.softmax(pool_cosines(embeddings[0], embeddings[1:]) / 0.05, dim=-1)
    assert PoolKL(None).compute_loss_from_embeddings(embeddings, student).abs() < 1e-10


def test_margin_mse_zero_when_margins_match() -> None:
    embeddings = random_batch(requires_grad=False)
    cosines = pool_cosines(embeddings[0], embeddings[1:])
    shifted = cosines + torch.tensor([[5.0], [-3.0], [0.5]], dtype=torch.float64)
    assert UtilityMarginMSE(None).compute_loss_from_embeddings(embeddings, shifted).abs() < 1e-12
    assert UtilityMarginMSE(None, utility_scale=0.5).compute_loss_from_embeddings(embeddings, 2 * shifted).abs() < 1e-12
    assert UtilityMarginMSE(None).compute_loss_from_embeddings(embeddings, 2 * shifted) > 1e-3


def test_margin_mse_by_hand_for_two_passages() -> None:
    query = torch.tensor([[1.0, 0.0]])
    passages = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]  # cosines 1 and 0
    loss = UtilityMarginMSE(None).compute_loss_from_embeddings([query, *passages], torch.tensor([[3.0, 0.5]]))
    assert loss.item() == pytest.approx((1.0 - 2.5) ** 2)


def test_candidate_targets_place_each_row_in_its_own_block() -> None:
    placed = candidate_targets(torch.tensor([[0.3, 0.7], [1.0, 0.0]]), in_batch_negatives=True)
    assert torch.equal(placed, torch.tensor([[0.3, 0.7, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]))


def test_batch_cosines_own_block_equals_pool_cosines() -> None:
    embeddings = random_batch(requires_grad=False)
    full = batch_cosines(embeddings[0], embeddings[1:]).reshape(B, B, K)
    own = full[torch.arange(B), torch.arange(B)]
    assert torch.allclose(own, pool_cosines(embeddings[0], embeddings[1:]))


def test_soft_cross_entropy_and_kl_by_hand() -> None:
    scores = torch.tensor([[math.log(3.0), 0.0]])  # softmax = [0.75, 0.25]
    targets = torch.tensor([[0.5, 0.5]])
    ce = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))
    assert soft_cross_entropy(scores, targets).item() == pytest.approx(ce)
    assert kl_divergence(scores, targets).item() == pytest.approx(ce - math.log(2.0))


def test_distribution_losses_reject_non_distributions() -> None:
    with pytest.raises(ValueError, match="distribution"):
        UtilityModulatedInfoNCE(None).compute_loss_from_embeddings(random_batch(), torch.ones(B, K))
    with pytest.raises(ValueError, match="shape"):
        PoolKL(None).compute_loss_from_embeddings(random_batch(), torch.ones(B, K + 1) / (K + 1))


class ColumnStub(nn.Module):
    """Stands in for a SentenceTransformer: the 'features' already hold the embedding."""

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"sentence_embedding": features["embedding"]}


def test_forward_embeds_columns_through_the_model() -> None:
    embeddings = random_batch(requires_grad=False)
    labels = one_hot([0, 1, 2])
    loss_fn = UtilityModulatedInfoNCE(ColumnStub())
    via_forward = loss_fn([{"embedding": e} for e in embeddings], labels)
    assert torch.equal(via_forward, loss_fn.compute_loss_from_embeddings(embeddings, labels))


def test_forward_without_model_raises() -> None:
    with pytest.raises(ValueError, match="without a model"):
        PoolKL(None)([{"embedding": e} for e in random_batch()], one_hot([0, 1, 2]))


def test_registry_label_kinds_and_configs() -> None:
    assert {name: cls.label_kind for name, cls in LOSSES.items()} == {
        "um_infonce": "distribution",
        "infonce_gold": "gold",
        "hard_utility": "distribution",
        "pool_kl": "distribution",
        "margin_mse": "utility",
    }
    assert GoldInfoNCE(None).get_config_dict()["multi_positive"] == "spread"
    assert UtilityModulatedInfoNCE(None, tau_s=0.1, hard_mix=0.3).get_config_dict() == {
        "tau_s": 0.1,
        "in_batch_negatives": True,
        "hard_mix": 0.3,
        "gather_across_devices": True,
    }
    assert UtilityMarginMSE(None).get_config_dict()["pairing"] == "all_pairs"
    for cls in LOSSES.values():
        assert "@" in cls(None).citation


@pytest.mark.parametrize("kwargs", [{"tau_s": 0.0}, {"hard_mix": 1.5}])
def test_bad_hyper_parameters_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        UtilityModulatedInfoNCE(None, **kwargs)
