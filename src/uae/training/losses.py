"""Training losses over a query and its pool, in the sentence-transformers loss shape.

A training row is ``(query, p_1, ..., p_K)``: a query and the K passages of its pool. Each loss
embeds the columns, then calls the pure ``compute_loss_from_embeddings(embeddings, labels)``
with ``embeddings[0]`` the ``(B, D)`` queries, ``embeddings[1:]`` K ``(B, D)`` passage tensors,
and ``labels`` a ``(B, K)`` float tensor whose meaning each loss names in ``label_kind``:

- ``"distribution"``: the target ``p*`` over the pool. A row sums to 1, or to a weight ``w`` in
  ``(0, 1]`` for a query the target rules down-weight (the loss of that row is then ``w`` times
  its cross-entropy against ``p* / w``; see ``uae.targets.distributions``);
- ``"gold"``: a mark (any value > 0) on each gold passage of the pool; the positive mass is spread
  evenly over the marked passages (multi-positive InfoNCE);
- ``"utility"``: the raw utilities of the pool passages.

In ``"distribution"`` and ``"gold"`` rows an entry equal to :data:`MASKED` (-1) leaves that
passage out of the query's softmax altogether: it is neither a positive nor a negative. The
training rows use it for a passage that the evidence labels call relevant but the teacher gave
(almost) no utility, such as the bridge paragraph of a multi-hop question, which the answer's
words are not in: it must not be taught as a distractor.

The student score is ``s(q, d) = cos(E(q), E(d)) / tau_s``. With in-batch negatives the
candidates of query ``i`` are every pool passage of the batch, laid out row-major: query ``j``'s
pool fills columns ``j*K .. j*K+K-1``; other queries' passages get target 0, even when the same
passage also sits in the query's own pool (the loss sees embeddings, not ids).

Under data-parallel training (``torchrun`` / ``accelerate launch``, ``torch.distributed``
initialised with more than one process) the in-batch losses gather the passage embeddings of every
process, with gradients (sentence-transformers' ``all_gather_with_grad``, as its ranking losses do
with ``gather_across_devices``), so the softmax runs over the global batch: with W processes each
query sees the W*B*K passages the user asked for, not the B*K of its own device. Queries and
labels stay local; the target mass stays on each query's own pool, whose columns are offset by the
process's rank (``rank*B*K``). Each process's loss is the mean over its own queries; DDP averages
the gradients over processes, so loss and gradients equal one process's on the concatenated batch
(``tests/test_distributed_loss.py`` checks it under ``torchrun`` on CPU). Every process must hold
the same number of queries per step (the trainer drops the last, short batch).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from uae.errors import NonFiniteLoss

LabelKind = Literal["distribution", "gold", "utility"]

DEFAULT_TAU_S = 0.05
"""Student temperature: cosine similarities are divided by it before a softmax."""

DISTRIBUTION_ATOL = 1e-3
"""How far a ``"distribution"`` label row may sum above 1 (float16 storage included)."""

MASKED = -1.0
"""A label entry that leaves its passage out of the query's softmax (see the module docstring)."""

MultiPositive = Literal["spread", "mask"]

INFONCE_CITATION = """
@misc{oord2019representationlearningcontrastivepredictive,
      title={Representation Learning with Contrastive Predictive Coding},
      author={Aaron van den Oord and Yazhe Li and Oriol Vinyals},
      year={2019},
      eprint={1807.03748},
      archivePrefix={arXiv},
      primaryClass={cs.LG},
      url={https://arxiv.org/abs/1807.03748},
}
"""

DPR_CITATION = """
@inproceedings{karpukhin2020dense,
      title={Dense Passage Retrieval for Open-Domain Question Answering},
      author={Vladimir Karpukhin and Barlas Oguz and Sewon Min and Patrick Lewis and Ledell Wu and Sergey Edunov and Danqi Chen and Wen-tau Yih},
      year={2020},
      eprint={2004.04906},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      url={https://arxiv.org/abs/2004.04906},
}
"""

REPLUG_ATLAS_CITATION = """
@misc{shi2023replug,
      title={REPLUG: Retrieval-Augmented Black-Box Language Models},
      author={Weijia Shi and Sewon Min and Michihiro Yasunaga and Minjoon Seo and Rich James and Mike Lewis and Luke Zettlemoyer and Wen-tau Yih},
      year={2023},
      eprint={2301.12652},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      url={https://arxiv.org/abs/2301.12652},
}
@misc{izacard2022atlas,
      title={Atlas: Few-shot Learning with Retrieval Augmented Language Models},
      author={Gautier Izacard and Patrick Lewis and Maria Lomeli and Lucas Hosseini and Fabio Petroni and Timo Schick and Jane Dwivedi-Yu and Armand Joulin and Sebastian Riedel and Edouard Grave},
      year={2022},
      eprint={2208.03299},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      url={https://arxiv.org/abs/2208.03299},
}
"""

MARGIN_MSE_CITATION = """
@misc{hofstatter2021improving,
      title={Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation},
      author={Sebastian Hofst{\\"a}tter and Sophia Althammer and Michael Schr{\\"o}der and Mete Sertkan and Allan Hanbury},
      year={2020},
      eprint={2010.02666},
      archivePrefix={arXiv},
      primaryClass={cs.IR},
      url={https://arxiv.org/abs/2010.02666},
}
"""


# ---------------------------------------------------------------- pure maths


def pool_cosines(query: Tensor, passages: Sequence[Tensor]) -> Tensor:
    """Cosine of each query with each passage of its own pool.

    Args:
        query: ``(B, D)`` query embeddings.
        passages: K tensors of ``(B, D)``; ``passages[k][i]`` is passage k of query i.

    Returns:
        ``(B, K)`` cosines.
    """
    pool = F.normalize(torch.stack(list(passages), dim=1), dim=-1)
    return torch.einsum("bd,bkd->bk", F.normalize(query, dim=-1), pool)


def batch_cosines(query: Tensor, passages: Sequence[Tensor]) -> Tensor:
    """Cosine of each query with every pool passage of the batch.

    Args:
        query: ``(B, D)`` query embeddings.
        passages: K tensors of ``(B, D)``.

    Returns:
        ``(B, B*K)`` cosines; query j's pool is columns ``j*K .. j*K+K-1``.
    """
    pool = torch.stack(list(passages), dim=1)
    flat = F.normalize(pool.reshape(-1, pool.shape[-1]), dim=-1)
    return F.normalize(query, dim=-1) @ flat.T


def candidate_scores(query: Tensor, passages: Sequence[Tensor], tau_s: float, in_batch_negatives: bool) -> Tensor:
    """Student scores ``cos / tau_s`` over the candidate set.

    Args:
        query: ``(B, D)`` query embeddings.
        passages: K tensors of ``(B, D)``.
        tau_s: student temperature.
        in_batch_negatives: whether the candidates are the whole batch's pools or the own pool.

    Returns:
        ``(B, B*K)`` with in-batch negatives, else ``(B, K)``.
    """
    cosines = batch_cosines(query, passages) if in_batch_negatives else pool_cosines(query, passages)
    return cosines / tau_s


def own_pool_layout(values: Tensor, fill: float | bool, pools: int | None = None, offset: int = 0) -> Tensor:
    """Lay ``(B, K)`` per-pool values out over ``pools`` pools of K columns, each row in its own block.

    Args:
        values: ``(B, K)``; row i goes to block ``offset + i``.
        fill: the value of every other block.
        pools: how many pools the candidate set holds (default ``B``: the local batch).
        offset: the block of row 0 (``rank * B`` when the passages were gathered across processes).

    Returns:
        ``(B, pools*K)``.
    """
    batch, k = values.shape
    pools = batch if pools is None else pools
    blocks = torch.full((batch, pools, k), fill, dtype=values.dtype, device=values.device)
    rows = torch.arange(batch, device=values.device)
    blocks[rows, rows + offset] = values
    return blocks.reshape(batch, pools * k)


def candidate_targets(targets: Tensor, in_batch_negatives: bool, pools: int | None = None, offset: int = 0) -> Tensor:
    """Lay ``(B, K)`` pool targets out over the candidate set of :func:`candidate_scores`.

    Args:
        targets: ``(B, K)`` targets over each query's own pool.
        in_batch_negatives: whether the candidates include the other queries' pools.
        pools: pools in the candidate set (default ``B``; ``W*B`` with passages gathered over W processes).
        offset: the pool of this process's first query (``rank * B`` when gathered, else 0).

    Returns:
        ``targets`` itself, or ``(B, pools*K)`` with each row's targets in its own block, 0 elsewhere.
    """
    return own_pool_layout(targets, 0.0, pools, offset) if in_batch_negatives else targets


def candidate_mask(candidates: Tensor, in_batch_negatives: bool, pools: int | None = None, offset: int = 0) -> Tensor:
    """Lay a ``(B, K)`` boolean "in the softmax" mask out over the candidate set.

    Args:
        candidates: ``(B, K)``, ``False`` for the masked passages of each query's own pool.
        in_batch_negatives: whether the candidates include the other queries' pools (which stay
            candidates: a passage is masked only for the query whose row masks it).
        pools: pools in the candidate set (default ``B``; ``W*B`` with passages gathered over W processes).
        offset: the pool of this process's first query (``rank * B`` when gathered, else 0).

    Returns:
        ``candidates`` itself, or ``(B, pools*K)`` with each row's mask in its own block, ``True`` elsewhere.
    """
    return own_pool_layout(candidates, True, pools, offset) if in_batch_negatives else candidates


def world_size() -> int:
    """Processes in the ``torch.distributed`` group (1 when it is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_passages(passages: Sequence[Tensor]) -> tuple[list[Tensor], int, int]:
    """Every process's pool passages, gathered with gradients, for in-batch negatives over the global batch.

    Args:
        passages: K local ``(B, D)`` tensors.

    Returns:
        ``(gathered, pools, offset)``: K ``(W*B, D)`` tensors (process r's rows at ``r*B``), the
        number of pools ``W*B`` and this process's first pool ``rank*B``. Without a distributed
        group of more than one process: the passages themselves, ``B`` and 0.

    Raises:
        ValueError: the processes hold different batch sizes (the gathered layout needs equal ones).
    """
    import torch.distributed.nn as dist_nn

    batch = passages[0].shape[0]
    if world_size() == 1:
        return list(passages), batch, 0
    sizes = [torch.zeros(1, dtype=torch.long, device=passages[0].device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([batch], device=passages[0].device))
    if any(int(size) != batch for size in sizes):
        raise ValueError(f"in-batch negatives across processes need the same batch size on every process, got {[int(s) for s in sizes]}")
    # The autograd all_gather, as sentence-transformers' all_gather_with_grad: its backward sums every
    # process's gradient for a passage into the process that embedded it.
    gathered = [torch.cat(dist_nn.all_gather(column), dim=0) for column in passages]
    return gathered, gathered[0].shape[0], dist.get_rank() * batch


def split_labels(labels: Tensor, loss_name: str) -> tuple[Tensor, Tensor]:
    """Target mass and the "in the softmax" mask of ``(B, K)`` label rows (:data:`MASKED` entries out).

    Returns:
        ``(targets, candidates)``: ``labels`` with masked entries set to 0, and ``labels != MASKED``.

    Raises:
        ValueError: an entry that is negative but not :data:`MASKED`.
    """
    candidates = labels != MASKED
    if (candidates & (labels < 0)).any():
        raise ValueError(f"{loss_name} expects label entries >= 0, or {MASKED} for a passage left out of the softmax")
    return torch.where(candidates, labels, torch.zeros_like(labels)), candidates


def row_cross_entropy(scores: Tensor, targets: Tensor, candidates: Tensor | None = None) -> Tensor:
    """``-sum_c targets_c * log softmax(scores)_c`` of each row, the softmax over the candidates only.

    Args:
        scores: ``(B, C)`` logits.
        targets: ``(B, C)`` non-negative weights, 0 on every non-candidate.
        candidates: ``(B, C)`` booleans, ``False`` for entries left out of the softmax; ``None``: all in.

    Returns:
        ``(B,)`` values.
    """
    if candidates is not None:
        scores = scores.masked_fill(~candidates, float("-inf"))
    log_probs = torch.log_softmax(scores, dim=-1)
    return -torch.where(targets > 0, targets * log_probs, torch.zeros_like(log_probs)).sum(dim=-1)


def soft_cross_entropy(scores: Tensor, targets: Tensor, candidates: Tensor | None = None) -> Tensor:
    """Batch mean of :func:`row_cross_entropy`.

    Args:
        scores: ``(B, C)`` logits.
        targets: ``(B, C)`` non-negative weights (a distribution for a proper cross-entropy).
        candidates: ``(B, C)`` booleans, ``False`` for entries left out of the softmax; ``None``: all in.

    Returns:
        A scalar.
    """
    return row_cross_entropy(scores, targets, candidates).mean()


def separate_positives_nll(scores: Tensor, targets: Tensor, candidates: Tensor | None = None) -> Tensor:
    """Batch mean of ``-sum_g targets_g log(e^s_g / (e^s_g + sum_n e^s_n))``: each positive against the negatives only.

    The positives (``targets > 0``) do not compete with each other; the negatives are the
    candidates with target 0. This is multi-positive InfoNCE with "the other positives masked out
    of the softmax".

    Raises:
        ValueError: a row without any negative candidate.
    """
    candidates = torch.ones_like(scores, dtype=torch.bool) if candidates is None else candidates
    negatives = candidates & (targets <= 0)
    if not negatives.any(dim=-1).all():
        raise ValueError("separate positives need at least one negative candidate in every row")
    negative_lse = torch.logsumexp(scores.masked_fill(~negatives, float("-inf")), dim=-1, keepdim=True)
    log_probs = scores - torch.logaddexp(scores, negative_lse)
    return -torch.where(targets > 0, targets * log_probs, torch.zeros_like(log_probs)).sum(dim=-1).mean()


def kl_divergence(scores: Tensor, targets: Tensor, candidates: Tensor | None = None) -> Tensor:
    """Batch mean of ``w * KL(targets / w || softmax(scores))`` with ``w`` each row's sum, ``0 log 0 = 0``.

    Args:
        scores: ``(B, C)`` logits.
        targets: ``(B, C)`` non-negative rows with a positive sum ``w`` (1 for distributions).
        candidates: ``(B, C)`` booleans, ``False`` for entries left out of the softmax; ``None``: all in.

    Returns:
        A scalar, 0 when the student distribution equals the targets.
    """
    weight = targets.sum(dim=-1, keepdim=True)
    normalized = targets / weight
    negative_entropy = torch.xlogy(normalized, normalized).sum(dim=-1)
    return (weight.squeeze(-1) * (negative_entropy + row_cross_entropy(scores, normalized, candidates))).mean()


def one_hot_argmax(labels: Tensor) -> Tensor:
    """One-hot of each row's argmax (the first one on ties).

    Args:
        labels: ``(B, K)`` scores, distributions or gold marks.

    Returns:
        ``(B, K)`` one-hot rows of the same dtype.
    """
    return F.one_hot(labels.argmax(dim=-1), labels.shape[-1]).to(labels.dtype)


def pairwise_margins(scores: Tensor) -> Tensor:
    """``scores_i - scores_j`` for every pair ``i < j`` of each row.

    Args:
        scores: ``(B, K)``.

    Returns:
        ``(B, K*(K-1)/2)`` margins.
    """
    i, j = torch.triu_indices(scores.shape[-1], scores.shape[-1], offset=1, device=scores.device)
    return scores[:, i] - scores[:, j]


def margin_mse(student: Tensor, teacher: Tensor) -> Tensor:
    """MSE between student and teacher margins over all pairs of each pool.

    Args:
        student: ``(B, K)`` student scores.
        teacher: ``(B, K)`` teacher scores (utilities).

    Returns:
        A scalar, 0 when every student margin equals the teacher's.
    """
    return F.mse_loss(pairwise_margins(student), pairwise_margins(teacher))


# ---------------------------------------------------------------- label checks


def check_finite(labels: Tensor, loss_name: str) -> None:
    """Raise when ``labels`` hold a NaN or an infinity."""
    if not torch.isfinite(labels).all():
        raise ValueError(f"{loss_name} expects finite labels")


def check_distribution(targets: Tensor, loss_name: str) -> None:
    """Raise unless every row of ``targets`` is non-negative with a sum in ``(0, 1]``."""
    sums = targets.sum(dim=-1)
    if (targets < 0).any() or (sums <= 0).any() or (sums > 1 + DISTRIBUTION_ATOL).any():
        raise ValueError(f"{loss_name} expects target distributions as labels (non-negative rows summing to 1, or to a query weight in (0, 1])")


def check_gold(targets: Tensor, loss_name: str) -> None:
    """Raise unless every row of ``targets`` marks at least one gold passage."""
    if not (targets.max(dim=-1).values > 0).all():
        raise ValueError(f"{loss_name} expects every label row to mark a gold passage (a value > 0)")


# ---------------------------------------------------------------- losses


class PoolLoss(nn.Module):
    """Base of the pool losses: embeds ``(query, p_1..p_K)`` columns and checks the shapes.

    A loss that is not finite raises :class:`NonFiniteLoss` instead of being handed to the
    optimiser (the trainer would otherwise log it as 0 and step into NaN weights).

    Args:
        model: the ``SentenceTransformer`` being trained; ``None`` is accepted for calling
            :meth:`compute_loss_from_embeddings` directly.
        tau_s: student temperature.
    """

    label_kind: ClassVar[LabelKind]

    def __init__(self, model: nn.Module | None, tau_s: float = DEFAULT_TAU_S) -> None:
        super().__init__()
        if not 0 < tau_s < float("inf"):
            raise ValueError(f"tau_s must be a positive finite number, got {tau_s}")
        self.model = model
        self.tau_s = tau_s

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        """Embed the columns with ``self.model`` and compute the loss."""
        from sentence_transformers.base.losses.merged_forward import embed_columns

        if self.model is None:
            raise ValueError(f"{type(self).__name__} was built without a model; call compute_loss_from_embeddings")
        loss = self.compute_loss_from_embeddings(embed_columns(self.model, sentence_features), labels)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"{type(self).__name__} is {loss.item()} (not finite); lower the learning rate or check the labels")
        return loss

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """The loss from ``[queries (B, D), p_1 (B, D), ..., p_K (B, D)]`` and ``(B, K)`` labels."""
        raise NotImplementedError

    def split(self, embeddings: list[Tensor], labels: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        """Check shapes; return queries, pool passages and labels in the query's dtype.

        Args:
            embeddings: ``[queries, p_1, ..., p_K]``.
            labels: ``(B, K)``.

        Returns:
            ``(query, passages, labels)`` with ``labels`` detached.
        """
        name = type(self).__name__
        if len(embeddings) < 2:
            raise ValueError(f"{name} expects (query, p_1, ..., p_K) columns, got {len(embeddings)} column(s)")
        query, passages = embeddings[0], list(embeddings[1:])
        expected = (query.shape[0], len(passages))
        if tuple(labels.shape) != expected:
            raise ValueError(f"{name} expects labels of shape (batch, K) = {expected}, got {tuple(labels.shape)}")
        labels = labels.detach().to(device=query.device, dtype=query.dtype)
        check_finite(labels, name)
        return query, passages, labels

    def get_config_dict(self) -> dict[str, Any]:
        """Hyper-parameters shown in model cards."""
        return {"tau_s": self.tau_s}

    def scored_candidates(self, query: Tensor, passages: list[Tensor], in_batch_negatives: bool,
                          gather_across_devices: bool) -> tuple[Tensor, int, int]:
        """Student scores over the candidate set, and where this process's pools sit in it.

        Args:
            query: ``(B, D)`` local queries.
            passages: K local ``(B, D)`` passage tensors.
            in_batch_negatives: add the other queries' pools to the candidates.
            gather_across_devices: with in-batch negatives under distributed training, the other
                processes' pools too (:func:`gather_passages`).

        Returns:
            ``(scores, pools, offset)`` for :func:`candidate_targets` and :func:`candidate_mask`.
        """
        pools, offset = query.shape[0], 0
        if in_batch_negatives and gather_across_devices:
            passages, pools, offset = gather_passages(passages)
        return candidate_scores(query, passages, self.tau_s, in_batch_negatives), pools, offset


class UtilityModulatedInfoNCE(PoolLoss):
    """Cross-entropy of the student against the utility distribution ``p*``.

    ``L(q) = - sum_{d in P(q)} p*(d) log softmax(s(q, .))_d``, with the softmax over the
    query's pool plus, by default, every other pool passage in the batch (target 0). With
    ``hard_mix = lam`` the loss is ``(1 - lam) * L_soft + lam * L_hard``, where ``L_hard`` is
    InfoNCE on ``argmax p*`` over the same candidates. A row that sums to a weight ``w < 1``
    contributes ``w`` times its loss; :data:`MASKED` passages are left out of the softmax.

    Args:
        model: the ``SentenceTransformer`` being trained (or ``None``).
        tau_s: student temperature.
        in_batch_negatives: add the other queries' pools to the candidates.
        hard_mix: weight ``lam`` in ``[0, 1]`` of the hard InfoNCE term.
        gather_across_devices: under distributed training (more than one process), the in-batch
            negatives are every process's pools (default; a no-op on one process).
    """

    label_kind: ClassVar[LabelKind] = "distribution"

    def __init__(
        self,
        model: nn.Module | None,
        tau_s: float = DEFAULT_TAU_S,
        in_batch_negatives: bool = True,
        hard_mix: float = 0.0,
        gather_across_devices: bool = True,
    ) -> None:
        super().__init__(model, tau_s)
        if not 0.0 <= hard_mix <= 1.0:
            raise ValueError(f"hard_mix must lie in [0, 1], got {hard_mix}")
        self.in_batch_negatives = in_batch_negatives
        self.hard_mix = hard_mix
        self.gather_across_devices = gather_across_devices

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """The mixed soft/hard loss, batch mean."""
        query, passages, labels = self.split(embeddings, labels)
        targets, candidates = split_labels(labels, type(self).__name__)
        check_distribution(targets, type(self).__name__)
        scores, pools, offset = self.scored_candidates(query, passages, self.in_batch_negatives, self.gather_across_devices)
        mask = candidate_mask(candidates, self.in_batch_negatives, pools, offset)
        soft = soft_cross_entropy(scores, candidate_targets(targets, self.in_batch_negatives, pools, offset), mask)
        if self.hard_mix == 0.0:
            return soft
        hard_targets = one_hot_argmax(targets) * targets.sum(dim=-1, keepdim=True)
        hard = soft_cross_entropy(scores, candidate_targets(hard_targets, self.in_batch_negatives, pools, offset), mask)
        return (1.0 - self.hard_mix) * soft + self.hard_mix * hard

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "in_batch_negatives": self.in_batch_negatives, "hard_mix": self.hard_mix,
                "gather_across_devices": self.gather_across_devices}

    @property
    def citation(self) -> str:
        return INFONCE_CITATION


class GoldInfoNCE(PoolLoss):
    """Plain InfoNCE on the gold evidence: the similarity baseline, with several positives.

    Every marked passage of a row is a positive. ``multi_positive="spread"`` (default) spreads
    the positive mass evenly over them in one softmax (the normalised multi-hot target, the
    standard multi-positive InfoNCE; it is UM-InfoNCE with a uniform target over the gold, so the
    two baselines differ only in their targets). ``"mask"`` scores each positive against the
    negatives alone, the other positives masked out of its softmax, so gold passages never compete.

    Args:
        model: the ``SentenceTransformer`` being trained (or ``None``).
        tau_s: student temperature.
        in_batch_negatives: add the other queries' pools to the candidates.
        multi_positive: ``"spread"`` or ``"mask"``.
        gather_across_devices: under distributed training, the in-batch negatives are every process's pools.
    """

    label_kind: ClassVar[LabelKind] = "gold"

    def __init__(self, model: nn.Module | None, tau_s: float = DEFAULT_TAU_S, in_batch_negatives: bool = True,
                 multi_positive: MultiPositive = "spread", gather_across_devices: bool = True) -> None:
        super().__init__(model, tau_s)
        if multi_positive not in ("spread", "mask"):
            raise ValueError(f"multi_positive must be 'spread' or 'mask', got {multi_positive!r}")
        self.in_batch_negatives = in_batch_negatives
        self.multi_positive = multi_positive
        self.gather_across_devices = gather_across_devices

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Multi-positive InfoNCE on the marked passages, batch mean."""
        query, passages, labels = self.split(embeddings, labels)
        marks, candidates = split_labels(labels, type(self).__name__)
        check_gold(marks, type(self).__name__)
        targets = (marks > 0).to(marks.dtype)
        targets = targets / targets.sum(dim=-1, keepdim=True)
        scores, pools, offset = self.scored_candidates(query, passages, self.in_batch_negatives, self.gather_across_devices)
        mask = candidate_mask(candidates, self.in_batch_negatives, pools, offset)
        layout = candidate_targets(targets, self.in_batch_negatives, pools, offset)
        if self.multi_positive == "mask":
            return separate_positives_nll(scores, layout, mask)
        return soft_cross_entropy(scores, layout, mask)

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "in_batch_negatives": self.in_batch_negatives, "multi_positive": self.multi_positive,
                "gather_across_devices": self.gather_across_devices}

    @property
    def citation(self) -> str:
        return DPR_CITATION


class HardUtilityInfoNCE(PoolLoss):
    """InfoNCE whose single positive is the top-utility passage (``argmax p*``, the first on ties).

    The same maths as :class:`UtilityModulatedInfoNCE` with a one-hot target, so the two give
    identical values and gradients on one-hot labels.

    Args:
        model: the ``SentenceTransformer`` being trained (or ``None``).
        tau_s: student temperature.
        in_batch_negatives: add the other queries' pools to the candidates.
        gather_across_devices: under distributed training, the in-batch negatives are every process's pools.
    """

    label_kind: ClassVar[LabelKind] = "distribution"

    def __init__(self, model: nn.Module | None, tau_s: float = DEFAULT_TAU_S, in_batch_negatives: bool = True,
                 gather_across_devices: bool = True) -> None:
        super().__init__(model, tau_s)
        self.in_batch_negatives = in_batch_negatives
        self.gather_across_devices = gather_across_devices

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """InfoNCE on the argmax positive (weighted like the row), batch mean."""
        query, passages, labels = self.split(embeddings, labels)
        targets, candidates = split_labels(labels, type(self).__name__)
        check_distribution(targets, type(self).__name__)
        scores, pools, offset = self.scored_candidates(query, passages, self.in_batch_negatives, self.gather_across_devices)
        hard = one_hot_argmax(targets) * targets.sum(dim=-1, keepdim=True)
        return soft_cross_entropy(scores, candidate_targets(hard, self.in_batch_negatives, pools, offset),
                                  candidate_mask(candidates, self.in_batch_negatives, pools, offset))

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "in_batch_negatives": self.in_batch_negatives,
                "gather_across_devices": self.gather_across_devices}

    @property
    def citation(self) -> str:
        return INFONCE_CITATION


class PoolKL(PoolLoss):
    """``KL(p* || softmax(s(q, .)))`` over the query's own pool only, as in REPLUG and Atlas.

    Args:
        model: the ``SentenceTransformer`` being trained (or ``None``).
        tau_s: student temperature.
    """

    label_kind: ClassVar[LabelKind] = "distribution"

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """The KL divergence, batch mean."""
        query, passages, labels = self.split(embeddings, labels)
        targets, candidates = split_labels(labels, type(self).__name__)
        check_distribution(targets, type(self).__name__)
        return kl_divergence(candidate_scores(query, passages, self.tau_s, in_batch_negatives=False), targets, candidates)

    @property
    def citation(self) -> str:
        return REPLUG_ATLAS_CITATION


class UtilityMarginMSE(PoolLoss):
    """MarginMSE on utilities over all pairs of each pool.

    For every pair ``i < j`` of a pool, the squared error between the student margin
    ``cos(q, d_i) - cos(q, d_j)`` (not divided by a temperature) and the teacher margin
    ``utility_scale * (u_i - u_j)``, averaged over pairs and batch. All pairs rather than pairs
    against the top passage: every ordering constraint counts, no single (possibly noisy) top
    passage anchors them all, and with K = 2 it is the classic MarginMSE.

    Args:
        model: the ``SentenceTransformer`` being trained (or ``None``).
        utility_scale: multiplies teacher margins; cosine margins lie in ``[-2, 2]`` while
            utilities are in nats per token, so a scale below 1 can bring them in range.
    """

    label_kind: ClassVar[LabelKind] = "utility"

    def __init__(self, model: nn.Module | None, utility_scale: float = 1.0) -> None:
        super().__init__(model)
        if not 0 < utility_scale < float("inf"):
            raise ValueError(f"utility_scale must be a positive finite number, got {utility_scale}")
        self.utility_scale = utility_scale

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """The margin MSE, mean over pairs and batch."""
        query, passages, utilities = self.split(embeddings, labels)
        if len(passages) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 pool passages to form a margin")
        return margin_mse(pool_cosines(query, passages), self.utility_scale * utilities)

    def get_config_dict(self) -> dict[str, Any]:
        return {"pairing": "all_pairs", "utility_scale": self.utility_scale}

    @property
    def citation(self) -> str:
        return MARGIN_MSE_CITATION


LOSSES: dict[str, type[PoolLoss]] = {
    "um_infonce": UtilityModulatedInfoNCE,
    "infonce_gold": GoldInfoNCE,
    "hard_utility": HardUtilityInfoNCE,
    "pool_kl": PoolKL,
    "margin_mse": UtilityMarginMSE,
}
"""Loss name (as written in configs) -> class; each class's ``label_kind`` says what labels it needs."""


def label_kind_of(loss_name: str) -> str:
    """What the loss needs in its labels: ``distribution``, ``utility`` or ``gold``."""
    return LOSSES[loss_name].label_kind
