"""Data model, readers and writers (BEIR layout, parquet tables), and dataset builders."""

from uae.data.beir import read_dataset, write_dataset
from uae.data.schema import Corpus, Dataset, Passage, Qrels, Query, SkipReport
from uae.data.tables import Candidate, NLLRecord, Pools, read_nlls, read_pools, write_pools
from uae.errors import DataError

__all__ = [
    "Candidate", "Corpus", "DataError", "Dataset", "NLLRecord", "Passage", "Pools", "Qrels", "Query",
    "SkipReport", "read_dataset", "read_nlls", "read_pools", "write_dataset", "write_pools",
]
