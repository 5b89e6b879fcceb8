"""The embedded default run: the synthetic QA set, the packaged MiniLM, the Dirichlet teacher.

``uae quickstart`` is ``uae run`` on this config with the library's defaults (the ones
``examples/config.yaml`` spells out); it needs no network and no GPU.
"""

from __future__ import annotations

from pathlib import Path

from uae.config import RunConfig, TrainingConfig
from uae.data.beir import write_dataset
from uae.data.synthetic import make_quickstart_dataset


def write_quickstart_data(folder: Path) -> Path:
    """Generate the synthetic dataset (deterministic) into ``folder`` in the BEIR layout."""
    return write_dataset(make_quickstart_dataset(), folder)


def quickstart_config(data_dir: Path, out_dir: Path, steps: int | None = None) -> RunConfig:
    """The library's defaults on the synthetic set; ``steps`` overrides the training length."""
    training = TrainingConfig(steps=steps) if steps else TrainingConfig()
    return RunConfig(data=str(data_dir), out=str(out_dir), training=training)
