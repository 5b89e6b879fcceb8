"""Parquet tables for candidate pools and answer NLLs.

``pools.parquet``  one row per (query, candidate):
    query_id, passage_id, rank (0 = best), score (fused), is_gold

NLL table, one row per (query, passage or none, answer):
    query_id, passage_id ("" = no passage: the question alone), answer_index, nll,
    answer_tokens, truncated

The raw NLLs are stored, never only utilities: the LLM pass is the expensive step and
every transform (aggregation, temperature, normalisation) must be recomputable from disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from uae.errors import DataError
from uae.io import atomic_path

NO_PASSAGE = ""
"""``passage_id`` of the NLL row that scores the answer from the question alone."""

POOL_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("passage_id", pa.string()),
        ("rank", pa.int32()),
        ("score", pa.float32()),
        ("is_gold", pa.bool_()),
    ]
)

NLL_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("passage_id", pa.string()),
        ("answer_index", pa.int32()),
        ("nll", pa.float64()),
        ("answer_tokens", pa.int32()),
        ("truncated", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class Candidate:
    """One pooled passage of one query."""

    passage_id: str
    score: float
    is_gold: bool


Pools = dict[str, list[Candidate]]
"""``{query_id: [candidates, best first]}``."""


@dataclass(frozen=True)
class NLLRecord:
    """The mean negative log-likelihood per answer token of one answer, with or without a passage."""

    query_id: str
    passage_id: str
    answer_index: int
    nll: float
    answer_tokens: int
    truncated: bool = False


def write_table(table: pa.Table, path: str | os.PathLike, durable: bool = False) -> Path:
    """Write ``table`` to ``path`` through a temporary name, so a crash never leaves half a file.

    ``durable``: fsync it too (see :func:`uae.io.atomic_path`).
    """
    with atomic_path(path, durable) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_table(path: str | os.PathLike, schema: pa.Schema) -> pa.Table:
    """Read a parquet file and check that it has the columns of ``schema``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found")
    try:
        table = pq.read_table(path)
    except pa.ArrowInvalid as err:
        raise DataError(path, None, f"expected a parquet file ({err})") from None
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise DataError(path, None, f"expected columns {schema.names}, missing {missing}")
    return table.select(schema.names).cast(schema)


def pools_to_table(pools: Pools) -> pa.Table:
    rows = [
        (qid, c.passage_id, rank, c.score, c.is_gold)
        for qid, candidates in pools.items()
        for rank, c in enumerate(candidates)
    ]
    columns = list(zip(*rows)) if rows else [[] for _ in POOL_SCHEMA]
    return pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, POOL_SCHEMA)], schema=POOL_SCHEMA)


def write_pools(pools: Pools, path: str | os.PathLike) -> Path:
    return write_table(pools_to_table(pools), path)


def read_pools(path: str | os.PathLike) -> Pools:
    """Read ``pools.parquet`` back into ``{query_id: [Candidate, ...]}`` in rank order."""
    table = read_table(path, POOL_SCHEMA).sort_by([("query_id", "ascending"), ("rank", "ascending")])
    pools: Pools = {}
    for qid, pid, score, gold in zip(
        table["query_id"].to_pylist(),
        table["passage_id"].to_pylist(),
        table["score"].to_pylist(),
        table["is_gold"].to_pylist(),
    ):
        pools.setdefault(qid, []).append(Candidate(pid, score, gold))
    return pools


def nll_records_to_table(records: list[NLLRecord]) -> pa.Table:
    return pa.table(
        {
            "query_id": pa.array([r.query_id for r in records], pa.string()),
            "passage_id": pa.array([r.passage_id for r in records], pa.string()),
            "answer_index": pa.array([r.answer_index for r in records], pa.int32()),
            "nll": pa.array([r.nll for r in records], pa.float64()),
            "answer_tokens": pa.array([r.answer_tokens for r in records], pa.int32()),
            "truncated": pa.array([r.truncated for r in records], pa.bool_()),
        },
        schema=NLL_SCHEMA,
    )


def read_nlls(path: str | os.PathLike) -> list[NLLRecord]:
    table = read_table(path, NLL_SCHEMA)
    return [NLLRecord(**row) for row in table.to_pylist()]
