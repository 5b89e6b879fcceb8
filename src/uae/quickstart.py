"""The embedded default run: the synthetic QA set, the packaged MiniLM, the Dirichlet teacher.

``uae quickstart`` is ``uae run`` on this config; it needs no network and no GPU.
"""

from __future__ import annotations

from pathlib import Path

from uae.config import LabelingConfig, MiningConfig, RunConfig, TrainingConfig
from uae.data.beir import write_dataset
from uae.data.synthetic import make_quickstart_dataset


def write_quickstart_data(folder: Path) -> Path:
    """Generate the synthetic dataset (deterministic) into ``folder`` in the BEIR layout."""
    return write_dataset(make_quickstart_dataset(), folder)


def quickstart_config(data_dir: Path, out_dir: Path, steps: int | None = None) -> RunConfig:
    """Settings sized to finish in minutes on 2 CPU cores."""
    return RunConfig(
        data=str(data_dir),
        out=str(out_dir),
        mining=MiningConfig(pool_size=16),
        labeling=LabelingConfig(teacher="dirichlet"),
        training=TrainingConfig(steps=steps or 30, batch_size=8, train_pool_size=8, max_seq_length=64),
    )
