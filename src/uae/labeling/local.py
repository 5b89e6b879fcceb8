"""Run a teacher over candidate pools in this process: answer NLLs with and without each passage.

The job (parts, manifest, resumption, the final ``nlls.parquet``) is :class:`uae.labeling.jobs.LabelingJob`;
this runner labels its pending parts one after the other, each part's requests ordered so that
those sharing a passage reach the teacher together (:mod:`uae.labeling.order`). The no-passage NLL of each
(query, answer) is computed once and reused for every passage. Passages cut to fit the model's
context are counted as ``truncated_passages``. The progress bar shows pairs/s and, for teachers
that count the tokens they feed the model (an int attribute ``tokens_processed``), tokens/s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.progress import ProgressColumn, Task
from rich.text import Text

from uae.data.schema import Corpus, Query
from uae.data.tables import NLLRecord, Pools, nll_records_to_table
from uae.labeling.jobs import LabelingJob, LabelingSummary, part_requests
from uae.labeling.order import sharing_chunks
from uae.progress import progress_bar
from uae.teachers.base import NLLResult, Teacher


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
        chunk_requests: Requests per ``teacher.score`` call, about (the unit of progress; requests
            sharing a passage stay in one call).
        progress: Show a progress bar.
    """
    job = LabelingJob.plan(queries, pools, corpus, out_dir, part_queries, teacher.describe())
    job.check_manifest()
    teacher.fit(corpus.texts)
    pending = job.pending()
    started = time.perf_counter()
    with labeling_progress(job.pair_count(pending), f"labeling with {teacher.name}", enabled=progress) as advance:
        for n in pending:
            records = label_part(job.parts[n], pools, corpus, teacher, chunk_requests, advance)
            job.write_part(n, nll_records_to_table(records))
    job.summary.seconds = time.perf_counter() - started
    job.summary.tokens = advance.tokens
    job.summary.teacher_stats = teacher.stats()
    return job.finish()


class ProgressCounter:
    """``advance(pairs, tokens=None)`` for the labeling bar; keeps the running token total."""

    def __init__(self, advance_bar: Callable[..., None]):
        self._advance_bar = advance_bar
        self.tokens: int | None = None

    def __call__(self, pairs: int, tokens: int | None = None) -> None:
        if tokens is not None:
            self.tokens = (self.tokens or 0) + tokens
        self._advance_bar(pairs, self.tokens)


class TokenRateColumn(ProgressColumn):
    """Tokens per second since the start, when the teacher reports tokens."""

    def render(self, task: Task) -> Text:
        tokens, elapsed = task.fields.get("tokens"), task.elapsed
        if tokens is None or not elapsed:
            return Text("")
        return Text(f"{tokens / elapsed:,.0f} tok/s", style="progress.data.speed")


@contextmanager
def labeling_progress(total: int, description: str, enabled: bool = True) -> Iterator[ProgressCounter]:
    """Yield a :class:`ProgressCounter`; the bar shows pairs done/total, pairs/s, tokens/s, elapsed time and ETA."""
    with progress_bar(total, description, "pairs", enabled, (TokenRateColumn(),), tokens=None) as advance:
        yield ProgressCounter(lambda pairs, tokens: advance(pairs, tokens=tokens))


def _tokens_seen(teacher: Teacher) -> int | None:
    count = getattr(teacher, "tokens_processed", None)
    return count if isinstance(count, int) else None


def label_part(part: Sequence[Query], pools: Pools, corpus: Corpus, teacher: Teacher, chunk: int,
               advance: Callable[[int, int | None], None]) -> list[NLLRecord]:
    """The NLL records of one part's queries, in the canonical order (query by query).

    The requests go to ``teacher.score`` in chunks of about ``chunk``, those sharing a passage side
    by side and never split across chunks when they fit one (:func:`uae.labeling.order.sharing_chunks`).
    ``advance(pairs, tokens)`` is called after each call, with the tokens the teacher reports
    feeding the model in it (``None`` when it does not count them).
    """
    requests, keys = part_requests(part, pools, corpus)
    results: list[NLLResult | None] = [None] * len(requests)
    for indices in sharing_chunks(requests, chunk):
        before = _tokens_seen(teacher)
        scored = teacher.score([requests[i] for i in indices])
        after = _tokens_seen(teacher)
        for index, result in zip(indices, scored):
            results[index] = result
        advance(len(scored), None if before is None or after is None else after - before)
    return [NLLRecord(qid, pid, answer_index, result.nll, result.answer_tokens, result.truncated)  # type: ignore[union-attr]
            for (qid, pid, answer_index), result in zip(keys, results)]
