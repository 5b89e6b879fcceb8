"""uae: Utility-Aligned Embeddings.

Dense retrievers trained to fetch the passages that lower an LLM's perplexity on the
gold answer, not merely the passages that look like the question.

The public names below are imported on first use, so ``import uae`` stays fast (no torch)::

    import uae

    retriever = uae.Retriever.load("runs/quickstart/index")
    result = uae.run_pipeline(uae.load_config("examples/config.yaml"))

The packages follow the data flow: ``data`` -> ``retrieval`` (mining) -> ``teachers`` ->
``labeling`` -> ``targets`` -> ``training`` -> ``evaluation`` (with ``rerankers``); ``serving``
and ``cli`` on top, ``pipeline`` chaining the stages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    # configuration and errors
    "RunConfig": "uae.config",
    "TargetConfig": "uae.config",
    "load_config": "uae.config",
    "DataError": "uae.errors",
    "ManifestMismatch": "uae.errors",
    "MissingExtra": "uae.errors",
    "ModelIndexMismatch": "uae.errors",
    "NonFiniteLoss": "uae.errors",
    "NonFiniteWeights": "uae.errors",
    "PromptLogprobsUnavailable": "uae.errors",
    "TeacherServerError": "uae.errors",
    # data
    "Corpus": "uae.data.schema",
    "Dataset": "uae.data.schema",
    "Passage": "uae.data.schema",
    "Query": "uae.data.schema",
    "read_dataset": "uae.data.beir",
    "write_dataset": "uae.data.beir",
    # retrieval
    "Hit": "uae.retrieval.types",
    "Run": "uae.retrieval.types",
    "Retriever": "uae.retrieval.retriever",
    "DenseIndex": "uae.retrieval.index",
    "IndexConfig": "uae.retrieval.index",
    "load_encoder": "uae.retrieval.encoders",
    "export_onnx": "uae.retrieval.onnx_encoder",
    "mine_pools": "uae.retrieval.mining",
    # teachers and labeling
    "Teacher": "uae.teachers.base",
    "load_teacher": "uae.teachers",
    "label_pools": "uae.labeling.local",
    "read_labels": "uae.labeling.jobs",
    # targets, training
    "utilities_from_nlls": "uae.targets.utilities",
    "UtilityModulatedInfoNCE": "uae.training.losses",
    "GoldInfoNCE": "uae.training.losses",
    "HardUtilityInfoNCE": "uae.training.losses",
    "PoolKL": "uae.training.losses",
    "UtilityMarginMSE": "uae.training.losses",
    "LOSSES": "uae.training.losses",
    "train_model": "uae.training.trainer",
    # evaluation, re-rankers
    "evaluate": "uae.evaluation.metrics",
    "compare": "uae.evaluation.metrics",
    "load_reader": "uae.evaluation.readers",
    "load_reranker": "uae.rerankers",
    # the stages chained
    "run_pipeline": "uae.pipeline",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from uae.config import RunConfig, TargetConfig, load_config
    from uae.data.beir import read_dataset, write_dataset
    from uae.data.schema import Corpus, Dataset, Passage, Query
    from uae.errors import (
        DataError,
        ManifestMismatch,
        MissingExtra,
        ModelIndexMismatch,
        NonFiniteLoss,
        NonFiniteWeights,
        PromptLogprobsUnavailable,
        TeacherServerError,
    )
    from uae.evaluation.metrics import compare, evaluate
    from uae.evaluation.readers import load_reader
    from uae.labeling.jobs import read_labels
    from uae.labeling.local import label_pools
    from uae.pipeline import run_pipeline
    from uae.rerankers import load_reranker
    from uae.retrieval.mining import mine_pools
    from uae.retrieval.encoders import load_encoder
    from uae.retrieval.index import DenseIndex, IndexConfig
    from uae.retrieval.onnx_encoder import export_onnx
    from uae.retrieval.retriever import Retriever
    from uae.retrieval.types import Hit, Run
    from uae.targets.utilities import utilities_from_nlls
    from uae.teachers import load_teacher
    from uae.teachers.base import Teacher
    from uae.training.losses import LOSSES, GoldInfoNCE, HardUtilityInfoNCE, PoolKL, UtilityMarginMSE, UtilityModulatedInfoNCE
    from uae.training.trainer import train_model


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'uae' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
