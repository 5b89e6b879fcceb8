"""Real datasets, loaded by name into the one schema.

>>> from uae.data.loaders import load_named
>>> dataset = load_named("squad-v1.1", "/path/to/squad")          # doctest: +SKIP

One module per dataset (``qasper``, ``squad``, ``nq_qed``, ``pubmedqa``, ``qmsum``, ``newsqa``,
``beir_folder``), each with ``load(source, **options) -> Loaded``; ``registry.DATASETS`` says
where each dataset's official files are; ``download`` fetches or copies them.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping
from typing import Any

from uae.data.loaders.common import Loaded, Source
from uae.data.loaders.download import default_folder, download
from uae.data.loaders.registry import DATASETS, DatasetInfo, RemoteFile, dataset_info
from uae.data.schema import Dataset, SkipReport
from uae.data.splits import split_by_document
from uae.errors import DataError, DownloadError

__all__ = [
    "DATASETS", "DatasetInfo", "DownloadError", "Loaded", "RemoteFile", "dataset_info", "dataset_stats",
    "download", "load", "load_named", "loader_options",
]

log = logging.getLogger(__name__)


def loader_options(name: str) -> dict[str, Any]:
    """The options a dataset's loader accepts, with their defaults (registry defaults applied)."""
    info = dataset_info(name)
    module = importlib.import_module(f"uae.data.loaders.{info.loader}")
    parameters = inspect.signature(module.load).parameters
    options = {key: p.default for key, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return {**options, **info.defaults}


def load(name: str, source: Source | None = None, **options: Any) -> Loaded:
    """Load dataset ``name`` from ``source`` with its loader, keeping the report of what was skipped.

    Args:
        name: a key of ``DATASETS`` or ``beir/<set>``.
        source: the dataset's raw files (a file, a list of files or a folder); by default the
            folder ``uae data download`` writes to.
        **options: loader options (see :func:`loader_options`), e.g. ``scoped=False``.

    Raises:
        ValueError: unknown dataset or option.
        DataError: missing or malformed files.
    """
    info = dataset_info(name)
    accepted = loader_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{name} does not take option(s) {', '.join(unknown)}; it takes {', '.join(sorted(accepted)) or 'none'}")
    if source is None:
        source = default_folder(name)
        if not source.exists():
            raise DataError(source, None, f"expected the raw files of {name}: run `uae data download {name}` or pass a source")
    module = importlib.import_module(f"uae.data.loaders.{info.loader}")
    loaded = module.load(source, **{**info.defaults, **options})
    if info.loader != "beir_folder":
        loaded.dataset.name = name
    return loaded


def load_named(name: str, source: Source | None = None, *, resplit: bool | None = None,
               fractions: Mapping[str, float] | None = None, seed: int = 13,
               skipped: SkipReport | None = None, **options: Any) -> Dataset:
    """Load dataset ``name`` as a :class:`Dataset` with train and test splits.

    Args:
        name: a key of ``DATASETS`` or ``beir/<set>``.
        source: the raw files; default the folder ``uae data download`` writes to.
        resplit: re-split by document (:func:`uae.data.splits.split_by_document`). ``None``
            (default) does so only when the source lacks a ``train`` or a ``test`` split.
        fractions: split fractions for the re-split (default train 0.6, dev 0.1, test 0.3).
        seed: seed of the re-split.
        skipped: if given, receives the counts of what the loader left out; without it
            they are logged at WARNING level.
        **options: loader options, e.g. ``scoped=False`` or ``chunk_tokens=200``.
    """
    loaded = load(name, source, **options)
    level = logging.WARNING if skipped is None else logging.INFO  # a caller that collects them reports them
    for line in loaded.skipped.lines():
        log.log(level, "%s: %s", name, line)
    if skipped is not None:
        skipped.merge(loaded.skipped)
    dataset = loaded.dataset
    if resplit or (resplit is None and not {"train", "test"} <= set(dataset.qrels)):
        log.info("%s: splitting by document (source splits: %s)", name, sorted(dataset.qrels))
        dataset = split_by_document(dataset, fractions, seed)
    return dataset


def dataset_stats(dataset: Dataset) -> dict[str, Any]:
    """Sizes worth reporting: passages, documents, queries and gold pairs per split, mean lengths."""
    words = [len(p.text.split()) for p in dataset.corpus]
    queries = {split: len(qrels) for split, qrels in dataset.qrels.items()}
    gold = sum(1 for qrels in dataset.qrels.values() for judged in qrels.values() for g in judged.values() if g > 0)
    judged_queries = sum(queries.values())
    return {
        "passages": len(dataset.corpus),
        "documents": len({p.doc_id for p in dataset.corpus if p.doc_id is not None}),
        "queries": queries,
        "scoped_queries": sum(1 for q in dataset.queries.values() if q.doc_id is not None),
        "gold_pairs": gold,
        "gold_per_query": round(gold / judged_queries, 2) if judged_queries else 0.0,
        "answers_per_query": round(sum(len(q.answers) for q in dataset.queries.values()) / max(1, len(dataset.queries)), 2),
        "passage_words_mean": round(sum(words) / len(words), 1) if words else 0.0,
        "passage_words_max": max(words, default=0),
    }
