"""Run a teacher over candidate pools: answer NLLs with and without each passage.

This is the expensive step (queries x candidates LM passes), so it is built to survive:
work is split into parts of whole queries; each finished part is written to
``parts/part-NNNNN.parquet`` through a temporary name; ``manifest.json`` records what the
job is (teacher, prompts, pools). Rerunning the same command skips finished parts, so a
crash loses at most the part in flight and never duplicates a row. When every part is
done, they are concatenated into ``nlls.parquet``.

The no-passage NLL of each (query, answer) is computed once and reused for every passage.

Input is checked before any LM pass: a query listed twice, a pool that names a passage absent
from the corpus or lists one passage twice, is an error naming the query; a query without a
usable answer or without a pool is skipped, and an unusable answer among several is left out
(its ``answer_index`` is kept for the others), each counted in the summary, naming the query (see
:func:`answer_problem` for what makes an answer unusable). Passages cut to fit
the model's context are counted as ``truncated_passages``. The progress bar shows pairs/s and,
for teachers that count the tokens they feed the model (an int attribute ``tokens_processed``),
tokens/s.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from rich.progress import ProgressColumn, Task
from rich.text import Text

from uae.data.schema import Corpus, Query, SkipReport
from uae.data.tables import NLL_SCHEMA, NO_PASSAGE, NLLRecord, Pools, nll_records_to_table, read_nlls, read_table, write_table
from uae.progress import progress_bar
from uae.teachers.base import NLLRequest, Teacher
from uae.teachers.dirichlet import tokenize

NLLS_FILE = "nlls.parquet"
EMPTY_ANSWER = "empty answer"
NO_WORD_TOKENS = "answer without word tokens"


@dataclass
class LabelingSummary:
    """What a labeling run did, for the console and ``labeling_summary.json``."""

    teacher: dict
    queries: int = 0
    pairs: int = 0
    truncated: int = 0
    parts_reused: int = 0
    seconds: float = 0.0
    tokens: int | None = None
    """Tokens fed to the model in this run, when the teacher counts them."""
    skipped: SkipReport = field(default_factory=SkipReport)

    def to_dict(self) -> dict:
        rate = self.pairs / self.seconds if self.seconds else None
        token_rate = self.tokens / self.seconds if self.seconds and self.tokens is not None else None
        return {
            "teacher": self.teacher,
            "queries": self.queries,
            "pairs": self.pairs,
            "truncated_passages": self.truncated,
            "parts_reused": self.parts_reused,
            "seconds": round(self.seconds, 3),
            "pairs_per_second": rate,
            "tokens": self.tokens,
            "tokens_per_second": token_rate,
            "skipped": self.skipped.to_dict(),
        }


class ManifestMismatch(RuntimeError):
    """The output folder holds a labeling job that differs from the one asked for."""


def answer_problem(answer: str) -> str | None:
    """Why ``answer`` cannot be labelled (:data:`EMPTY_ANSWER`, :data:`NO_WORD_TOKENS`), or ``None`` when it can.

    An answer with no word token (``"%"``, ``"!!"``: no Unicode ``\\w`` character, the word tokens
    of :func:`uae.teachers.dirichlet.tokenize`) holds nothing a passage could make likelier, and the
    Dirichlet teacher cannot score it at all. The rule is the same for every teacher (an LLM could
    score ``"%"``), so that every teacher labels the same (query, answer) pairs: mixing teachers and
    judging one teacher's students by another compare utilities of the same answers.
    """
    if not answer.strip():
        return EMPTY_ANSWER
    if not tokenize(answer):
        return NO_WORD_TOKENS
    return None


def requests_for_query(query: Query, passage_ids: Sequence[str], corpus: Corpus) -> tuple[list[NLLRequest], list[tuple[str, int]]]:
    """Requests for one query: per usable answer (:func:`answer_problem`), the question alone, then each pooled passage."""
    requests, keys = [], []
    for answer_index, answer in enumerate(query.answers):
        if answer_problem(answer) is not None:
            continue
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
        queries: Queries to label; those without a usable answer or a pool are skipped and counted.
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
    parts = _plan_parts(queries, pools, corpus, part_queries, summary)
    _check_manifest(out_dir, teacher, parts, pools)
    teacher.fit(corpus.texts)

    pending = _pending_parts(out_dir, len(parts))
    summary.parts_reused = len(parts) - len(pending)
    total = sum(_pair_count(q, pools) for n in pending for q in parts[n])
    started = time.perf_counter()
    with labeling_progress(total, f"labeling with {teacher.name}", enabled=progress) as advance:
        for n in pending:
            records = _label_part(parts[n], pools, corpus, teacher, chunk_requests, advance)
            write_table(nll_records_to_table(records), _part_path(out_dir, n))
    summary.seconds = time.perf_counter() - started
    summary.tokens = advance.tokens
    return _finish(out_dir, len(parts), summary)


class ProgressCounter:
    """``advance(pairs, tokens=None)`` for the labeling bar; keeps the running token total."""

    def __init__(self, advance_bar: Callable[..., None]):
        self._advance_bar = advance_bar
        self.tokens: int | None = None

    def __call__(self, pairs: int, tokens: int | None = None) -> None:
        if tokens is not None:
            self.tokens = (self.tokens or 0) + tokens
        self._advance_bar(pairs, self.tokens)


class _TokenRateColumn(ProgressColumn):
    """Tokens per second since the start, when the teacher reports tokens."""

    def render(self, task: Task) -> Text:
        tokens, elapsed = task.fields.get("tokens"), task.elapsed
        if tokens is None or not elapsed:
            return Text("")
        return Text(f"{tokens / elapsed:,.0f} tok/s", style="progress.data.speed")


@contextmanager
def labeling_progress(total: int, description: str, enabled: bool = True) -> Iterator[ProgressCounter]:
    """Yield a :class:`ProgressCounter`; the bar shows pairs done/total, pairs/s, tokens/s, elapsed time and ETA."""
    with progress_bar(total, description, "pairs", enabled, (_TokenRateColumn(),), tokens=None) as advance:
        yield ProgressCounter(lambda pairs, tokens: advance(pairs, tokens=tokens))


def _plan_parts(queries: Sequence[Query], pools: Pools, corpus: Corpus, part_queries: int, summary: LabelingSummary) -> list[list[Query]]:
    """The usable queries, checked and counted into ``summary``, cut into parts of ``part_queries``."""
    if part_queries < 1:
        raise ValueError(f"part_queries must be at least 1, got {part_queries}")
    todo = _usable(queries, pools, corpus, summary.skipped)
    summary.queries = len(todo)
    return [todo[i : i + part_queries] for i in range(0, len(todo), part_queries)]


def _pending_parts(out_dir: Path, count: int) -> list[int]:
    return [n for n in range(count) if not _part_path(out_dir, n).is_file()]


def _finish(out_dir: Path, count: int, summary: LabelingSummary) -> LabelingSummary:
    """Concatenate the parts into ``nlls.parquet``, count pairs and truncations, write the summary."""
    table = _concatenate_parts(out_dir, count)
    summary.pairs = int(pc.sum(pc.not_equal(table["passage_id"], NO_PASSAGE)).as_py() or 0)
    summary.truncated = int(pc.sum(table["truncated"]).as_py() or 0)
    write_table(table, out_dir / NLLS_FILE)
    _write_json(out_dir / "labeling_summary.json", summary.to_dict())
    return summary


def _usable(queries: Sequence[Query], pools: Pools, corpus: Corpus, skipped: SkipReport) -> list[Query]:
    usable, seen = [], set()
    for query in queries:
        if query.id in seen:
            raise ValueError(f"query {query.id!r} is listed twice; each query is labeled once")
        seen.add(query.id)
        problems = [answer_problem(answer) for answer in query.answers]
        if all(problem == EMPTY_ANSWER for problem in problems):
            skipped.add("no gold answer", query.id)
        elif all(problems):
            skipped.add("no usable answer (none has a word token)", query.id)
        elif not pools.get(query.id):
            skipped.add("no candidate pool", query.id)
        else:
            _check_pool(query.id, pools[query.id], corpus)
            for index, problem in enumerate(problems):
                if problem is not None:
                    skipped.add(f"{problem} (others of the query kept)", f"{query.id}#{index}")
            usable.append(query)
    return usable


def _check_pool(query_id: str, pool: Sequence, corpus: Corpus) -> None:
    ids = [c.passage_id for c in pool]
    if missing := [pid for pid in ids if pid not in corpus]:
        raise ValueError(f"the pool of query {query_id!r} names {len(missing)} passage(s) not in the corpus, "
                         f"e.g. {missing[:5]}; were the pools mined from another corpus?")
    if repeated := sorted({pid for pid in ids if ids.count(pid) > 1}):
        raise ValueError(f"the pool of query {query_id!r} lists passage(s) {repeated[:5]} more than once")


def _pair_count(query: Query, pools: Pools) -> int:
    return sum(answer_problem(answer) is None for answer in query.answers) * (len(pools[query.id]) + 1)


def _tokens_seen(teacher: Teacher) -> int | None:
    count = getattr(teacher, "tokens_processed", None)
    return count if isinstance(count, int) else None


def _label_part(part: Sequence[Query], pools: Pools, corpus: Corpus, teacher: Teacher, chunk: int,
                advance: Callable[[int, int | None], None]) -> list[NLLRecord]:
    requests: list[NLLRequest] = []
    keys: list[tuple[str, str, int]] = []
    for query in part:
        query_requests, query_keys = requests_for_query(query, [c.passage_id for c in pools[query.id]], corpus)
        requests += query_requests
        keys += [(query.id, pid, answer_index) for pid, answer_index in query_keys]
    records: list[NLLRecord] = []
    for start in range(0, len(requests), chunk):
        before = _tokens_seen(teacher)
        results = teacher.score(requests[start : start + chunk])
        after = _tokens_seen(teacher)
        for (qid, pid, answer_index), result in zip(keys[start : start + chunk], results):
            records.append(NLLRecord(qid, pid, answer_index, result.nll, result.answer_tokens, result.truncated))
        advance(len(results), None if before is None or after is None else after - before)
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
