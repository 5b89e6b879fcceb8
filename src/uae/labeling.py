"""Run a teacher over candidate pools: answer NLLs with and without each passage.

This is the expensive step (queries x candidates LM passes), so it is built to survive:
work is split into parts of whole queries; each finished part is written to
``parts/part-NNNNN.parquet`` through a temporary name; ``manifest.json`` records what the
job is (teacher, prompts, pools). Rerunning the same command skips finished parts, so a
crash loses at most the part in flight and never duplicates a row. When every part is
done, they are concatenated into ``nlls.parquet``.

The no-passage NLL of each (query, answer) is computed once and reused for every passage.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from uae.data.schema import Corpus, Query, SkipReport
from uae.data.tables import NLL_SCHEMA, NO_PASSAGE, NLLRecord, Pools, nll_records_to_table, read_nlls, read_table, write_table
from uae.progress import progress_bar
from uae.teachers.base import NLLRequest, Teacher

NLLS_FILE = "nlls.parquet"


@dataclass
class LabelingSummary:
    """What a labeling run did, for the console and ``labeling_summary.json``."""

    teacher: dict
    queries: int = 0
    pairs: int = 0
    truncated: int = 0
    parts_reused: int = 0
    seconds: float = 0.0
    skipped: SkipReport = field(default_factory=SkipReport)

    def to_dict(self) -> dict:
        rate = self.pairs / self.seconds if self.seconds else None
        return {
            "teacher": self.teacher,
            "queries": self.queries,
            "pairs": self.pairs,
            "truncated_passages": self.truncated,
            "parts_reused": self.parts_reused,
            "seconds": round(self.seconds, 3),
            "pairs_per_second": rate,
            "skipped": self.skipped.to_dict(),
        }


class ManifestMismatch(RuntimeError):
    """The output folder holds a labeling job that differs from the one asked for."""


def requests_for_query(query: Query, passage_ids: Sequence[str], corpus: Corpus) -> tuple[list[NLLRequest], list[tuple[str, int]]]:
    """Requests for one query: per answer, the question alone, then each pooled passage."""
    requests, keys = [], []
    for answer_index, answer in enumerate(query.answers):
        requests.append(NLLRequest(query.text, answer, None))
        keys.append((NO_PASSAGE, answer_index))
        for pid in passage_ids:
            requests.append(NLLRequest(query.text, answer, corpus[pid].full_text))
            keys.append((pid, answer_index))
    return requests, keys


def label_pools(
    queries: Sequence[Query],
    pools: Pools,
    corpus: Corpus,
    teacher: Teacher,
    out_dir: str | os.PathLike,
    part_queries: int = 64,
    chunk_requests: int = 256,
    progress: bool = True,
) -> LabelingSummary:
    """Score every pool with ``teacher`` and write ``out_dir/nlls.parquet`` (resumable).

    Args:
        queries: Queries to label; those without answers or pools are skipped and counted.
        pools: Candidate pools, ``{query_id: [Candidate, ...]}``.
        corpus: Passage texts.
        teacher: Any :class:`~uae.teachers.base.Teacher`.
        out_dir: Folder for parts, manifest and the final table.
        part_queries: Queries per part file (the unit of resumption).
        chunk_requests: Requests per ``teacher.score`` call (the unit of progress).
        progress: Show a progress bar.
    """
    out_dir = Path(out_dir)
    summary = LabelingSummary(teacher=teacher.describe())
    todo = _usable(queries, pools, corpus, summary.skipped)
    summary.queries = len(todo)
    parts = [todo[i : i + part_queries] for i in range(0, len(todo), part_queries)]
    _check_manifest(out_dir, teacher, parts, pools)
    teacher.fit(corpus.texts)

    pending = [n for n in range(len(parts)) if not _part_path(out_dir, n).is_file()]
    summary.parts_reused = len(parts) - len(pending)
    total = sum(_pair_count(q, pools) for n in pending for q in parts[n])
    started = time.perf_counter()
    with progress_bar(total, f"labeling with {teacher.name}", unit="pairs", enabled=progress) as advance:
        for n in pending:
            records = _label_part(parts[n], pools, corpus, teacher, chunk_requests, advance)
            write_table(nll_records_to_table(records), _part_path(out_dir, n))
    summary.seconds = time.perf_counter() - started

    table = _concatenate_parts(out_dir, len(parts))
    summary.pairs = int(pc.sum(pc.not_equal(table["passage_id"], NO_PASSAGE)).as_py() or 0)
    summary.truncated = int(pc.sum(table["truncated"]).as_py() or 0)
    write_table(table, out_dir / NLLS_FILE)
    _write_json(out_dir / "labeling_summary.json", summary.to_dict())
    return summary


def _usable(queries: Sequence[Query], pools: Pools, corpus: Corpus, skipped: SkipReport) -> list[Query]:
    usable = []
    for query in queries:
        if not query.answers:
            skipped.add("no gold answer", query.id)
        elif not pools.get(query.id):
            skipped.add("no candidate pool", query.id)
        elif missing := [c.passage_id for c in pools[query.id] if c.passage_id not in corpus]:
            raise ValueError(f"pool of query {query.id!r} names passages not in the corpus: {missing[:5]}")
        else:
            usable.append(query)
    return usable


def _pair_count(query: Query, pools: Pools) -> int:
    return len(query.answers) * (len(pools[query.id]) + 1)


def _label_part(part: Sequence[Query], pools: Pools, corpus: Corpus, teacher: Teacher, chunk: int, advance) -> list[NLLRecord]:
    requests: list[NLLRequest] = []
    keys: list[tuple[str, str, int]] = []
    for query in part:
        query_requests, query_keys = requests_for_query(query, [c.passage_id for c in pools[query.id]], corpus)
        requests += query_requests
        keys += [(query.id, pid, answer_index) for pid, answer_index in query_keys]
    records: list[NLLRecord] = []
    for start in range(0, len(requests), chunk):
        results = teacher.score(requests[start : start + chunk])
        for (qid, pid, answer_index), result in zip(keys[start : start + chunk], results):
            records.append(NLLRecord(qid, pid, answer_index, result.nll, result.answer_tokens, result.truncated))
        advance(len(results))
    return records


def _part_path(out_dir: Path, number: int) -> Path:
    return out_dir / "parts" / f"part-{number:05d}.parquet"


def _job_fingerprint(teacher: Teacher, parts: list[list[Query]], pools: Pools) -> str:
    digest = hashlib.sha256()
    for part in parts:
        for query in part:
            digest.update(json.dumps([query.id, query.text, query.answers, [c.passage_id for c in pools[query.id]]]).encode())
        digest.update(b"|")
    digest.update(json.dumps(teacher.describe(), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _check_manifest(out_dir: Path, teacher: Teacher, parts: list[list[Query]], pools: Pools) -> None:
    manifest_path = out_dir / "manifest.json"
    manifest = {
        "job": _job_fingerprint(teacher, parts, pools),
        "teacher": teacher.describe(),
        "parts": len(parts),
        "queries": sum(len(p) for p in parts),
    }
    if manifest_path.is_file():
        existing = json.loads(manifest_path.read_text())
        if existing.get("job") != manifest["job"]:
            raise ManifestMismatch(
                f"{out_dir} holds labels of another job (teacher {existing.get('teacher', {}).get('teacher')!r}, "
                f"{existing.get('queries')} queries); use a new output folder or delete it to start over"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(manifest_path, manifest)


def _concatenate_parts(out_dir: Path, count: int) -> pa.Table:
    tables = [read_table(_part_path(out_dir, n), NLL_SCHEMA) for n in range(count)]
    return pa.concat_tables(tables) if tables else NLL_SCHEMA.empty_table()


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def read_labels(out_dir: str | os.PathLike) -> list[NLLRecord]:
    """The NLL records of a finished labeling folder (or of an ``nlls.parquet`` file)."""
    path = Path(out_dir)
    return read_nlls(path / NLLS_FILE if path.is_dir() else path)
