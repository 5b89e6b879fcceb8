"""Data: the one schema every stage reads, its files, and the datasets that fill it.

- :mod:`~uae.data.schema`: passages, queries with answers, qrels, datasets, skip reports.
- :mod:`~uae.data.beir`: the BEIR folder with answers, read strictly and written atomically.
- :mod:`~uae.data.tables`: parquet tables of candidate pools and answer NLLs.
- :mod:`~uae.data.loaders`: one loader per real dataset, download and prepare.
- :mod:`~uae.data.chunking`, :mod:`~uae.data.splits`: passages from long documents; splits by document.
- :mod:`~uae.data.synthetic`: the embedded quickstart set.
"""

from uae.data.beir import read_dataset, write_dataset
from uae.data.schema import Corpus, Dataset, Passage, Qrels, Query, SkipReport
from uae.data.tables import Candidate, NLLRecord, Pools, read_nlls, read_pools, write_pools
from uae.errors import DataError

__all__ = [
    "Candidate", "Corpus", "DataError", "Dataset", "NLLRecord", "Passage", "Pools", "Qrels", "Query",
    "SkipReport", "read_dataset", "read_nlls", "read_pools", "write_dataset", "write_pools",
]
