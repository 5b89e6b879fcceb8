"""Starting a pool of Ray actors sized to the cluster: shared by labeling (``uae label --ray``) and corpus encoding (``uae index --ray``)."""

from __future__ import annotations

from typing import Any


def start_actors(ray: Any, actor_class: type, args: tuple, workers: int | None, gpus_per_worker: float | None,
                 cpus_per_worker: float, most: int) -> list[Any]:
    """Start ``actor_class(*args)`` on as many Ray workers as asked, or as the cluster holds.

    Args:
        ray: The imported ``ray`` module (initialised).
        actor_class: A plain class; it is wrapped with ``ray.remote`` here.
        args: Constructor arguments of each actor.
        workers: How many actors; ``None``: one per ``gpus_per_worker`` GPUs, or, on a cluster
            without GPUs, one per ``cpus_per_worker`` CPUs.
        gpus_per_worker: GPUs each actor reserves; ``None``: 1 when the cluster has a GPU, else 0.
        cpus_per_worker: CPUs each actor reserves.
        most: Never more actors than this (the units of work left).

    Raises:
        ValueError: an actor asks for more GPUs than the cluster has.
    """
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if gpus >= 1 else 0.0
    if gpus_per_worker > gpus:
        raise ValueError(f"each worker asks for {gpus_per_worker} GPU(s) but the Ray cluster has {gpus:g}; "
                         "use --gpus-per-worker 0 for CPU workers")
    if workers is None:
        workers = int(gpus // gpus_per_worker) if gpus_per_worker else int(resources.get("CPU", 1) // cpus_per_worker)
    count = max(1, min(int(workers), most))
    remote = ray.remote(actor_class).options(num_gpus=gpus_per_worker, num_cpus=cpus_per_worker)
    return [remote.remote(*args) for _ in range(count)]
