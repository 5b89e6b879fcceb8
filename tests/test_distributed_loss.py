"""In-batch losses under ``torchrun`` (2 processes, gloo, CPU) equal one process on the concatenated batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from distributed_loss_job import WORLD, encoder, loss_and_grads, losses

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def distributed(tmp_path_factory) -> dict:
    """Run the worker on ``WORLD`` CPU processes (once) and load what process 0 saved."""
    out = tmp_path_factory.mktemp("torchrun") / "results.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
               str(HERE / "distributed_loss_job.py"), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def single_process() -> dict:
    """Loss and gradients of one process on the whole batch (no process group)."""
    reference = {}
    for name, loss in losses(gather=True).items():
        value, grads = loss_and_grads(encoder(), loss, slice(None))
        reference[name] = {"loss": value, "grads": grads}
    return reference


def test_gathered_loss_and_gradients_equal_one_process_on_the_whole_batch(distributed, single_process) -> None:
    for name, expected in single_process.items():
        got = distributed["gathered"][name]
        torch.testing.assert_close(got["loss"], expected["loss"], atol=1e-5, rtol=0, msg=name)
        for grad, reference in zip(got["grads"], expected["grads"], strict=True):
            torch.testing.assert_close(grad, reference, atol=1e-5, rtol=0, msg=name)


def test_without_gathering_each_process_sees_only_its_own_negatives(distributed, single_process) -> None:
    for name, expected in single_process.items():
        assert abs(float(distributed["local"][name]["loss"] - expected["loss"])) > 1e-3, name


@pytest.mark.slow
def test_uae_train_under_torchrun_trains_data_parallel_over_the_global_batch(tmp_path, tiny_encoder_dir) -> None:
    import json

    from labeling_jobs import make_job, write_job

    from uae.labeling import label_pools
    from uae.teachers import DirichletTeacher

    corpus, queries, pools = make_job(n_queries=16, pool_size=4, n_passages=24)
    data, pools_path = write_job(tmp_path, corpus, queries, pools)
    label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path / "labels", part_queries=8, progress=False)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}", "-m", "uae.cli",
               "train", str(data), "--pools", str(pools_path), "--labels", str(tmp_path / "labels"), "--out", str(tmp_path / "model"),
               "--base-model", str(tiny_encoder_dir), "--steps", "2", "--batch-size", "2", "--dev-fraction", "0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in done.stderr  # the trainer really ran DDP
    record = json.loads((tmp_path / "model" / "uae_training.json").read_text())
    assert record["distributed"] == {"world_size": WORLD, "in_batch_negatives_across_processes": True}
