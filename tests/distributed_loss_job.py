"""A fixed toy batch for the distributed loss test, and the worker that ``torchrun`` starts on it.

Run as ``torchrun --nproc_per_node W tests/distributed_loss_job.py OUT``: each process takes its
slice of the batch, embeds it with a tiny linear encoder wrapped in DDP (gloo, CPU), computes every
in-batch loss with and without gathering across processes, backpropagates, and process 0 saves the
global loss (mean over processes) and the DDP-averaged gradients to ``OUT``, as
``{"gathered": {loss: ...}, "local": {loss: ...}}``. The test compares them with one process on the
whole batch.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from uae.training.losses import MASKED, GoldInfoNCE, HardUtilityInfoNCE, UtilityModulatedInfoNCE

WORLD, BATCH, POOL, FEATURES, DIM = 2, 3, 4, 6, 5
"""Processes, queries per process, pool size, input features, embedding size."""


def toy_batch() -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """``WORLD*BATCH`` queries, K passage columns and distribution labels (one masked entry, one down-weighted row)."""
    generator = torch.Generator().manual_seed(7)
    rows = WORLD * BATCH
    queries = torch.randn(rows, FEATURES, generator=generator, dtype=torch.float64)
    passages = [torch.randn(rows, FEATURES, generator=generator, dtype=torch.float64) for _ in range(POOL)]
    labels = torch.softmax(torch.randn(rows, POOL, generator=generator, dtype=torch.float64), dim=-1)
    labels[1] = torch.tensor([0.0, 0.7, 0.3, MASKED], dtype=torch.float64)
    labels[4] = labels[4] * 0.5
    return queries, passages, labels


def encoder() -> nn.Module:
    """The same tiny encoder in every process."""
    torch.manual_seed(11)
    return nn.Linear(FEATURES, DIM).double()


def losses(gather: bool) -> dict[str, nn.Module]:
    """Every loss with in-batch negatives, by name."""
    return {
        "um_infonce": UtilityModulatedInfoNCE(None, tau_s=0.1, hard_mix=0.3, gather_across_devices=gather),
        "infonce_gold": GoldInfoNCE(None, tau_s=0.1, multi_positive="mask", gather_across_devices=gather),
        "hard_utility": HardUtilityInfoNCE(None, tau_s=0.1, gather_across_devices=gather),
    }


def loss_and_grads(model: nn.Module, loss: nn.Module, rows: slice) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loss over ``rows`` of the toy batch and the gradients of ``model``'s parameters."""
    queries, passages, labels = toy_batch()
    model.zero_grad()
    embeddings = [model(queries[rows])] + [model(column[rows]) for column in passages]
    value = loss.compute_loss_from_embeddings(embeddings, labels[rows])
    value.backward()
    return value.detach(), [p.grad.detach().clone() for p in model.parameters()]


def main(out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = DistributedDataParallel(encoder())
    rows = slice(rank * BATCH, (rank + 1) * BATCH)
    results = {"gathered": {}, "local": {}}
    for mode, gather in (("gathered", True), ("local", False)):
        for name, loss in losses(gather).items():
            value, grads = loss_and_grads(model, loss, rows)
            dist.all_reduce(value)
            results[mode][name] = {"loss": value / world, "grads": grads}
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
