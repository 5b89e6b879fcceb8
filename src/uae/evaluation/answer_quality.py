"""Answer quality: a reader answers each question from each system's top-k; Token F1 and EM.

Metrics follow the official SQuAD v1.1 script: answers are normalised by
:func:`uae.evaluation.metrics.normalize_answer` (lowercase, punctuation and articles dropped,
whitespace collapsed), Token F1 is the harmonic mean of token precision and recall (0 when no
token is shared, so an empty prediction scores 0), exact match compares the normalised strings,
and each takes the maximum over the gold answers. The official QASPER evaluator's Answer F1 is
the same token F1 maximised over the annotators' reference answers (:func:`qasper_answer_f1`),
so on a QASPER folder the ``token_f1`` column *is* QASPER's Answer F1. One difference from both
scripts: ``normalize_answer`` drops every Unicode punctuation character, not only ASCII ones.

Generations are saved per system under ``OUT/generations/<system>.jsonl``, one line per
query (question, passage ids, answer, gold answers, scores, reader). A rerun skips the queries
whose saved line has the same reader (its :meth:`describe`, k) and the same passages; a line
cut short by a crash is ignored. Systems with the same top-k for a question share one answer
(the reader is called once), so adding systems costs only their new contexts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uae.data.schema import Corpus, Query
from uae.evaluation.metrics import MetricResult, metric_result, normalize_answer, rank_passages
from uae.evaluation.readers import Reader, ReaderRequest
from uae.io import atomic_write_text
from uae.retrieval.types import Run

GENERATION_METRICS: tuple[str, ...] = ("token_f1", "em")


# ---- metrics ---------------------------------------------------------------------------------


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD v1.1 (and QASPER) token F1 of one prediction against one reference."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def max_over_references(metric: Callable[[str, str], float], prediction: str, references: Sequence[str]) -> float:
    """The best score of ``prediction`` against any reference.

    Raises:
        ValueError: no reference.
    """
    if not references:
        raise ValueError("cannot score an answer without a gold reference")
    return max(metric(prediction, reference) for reference in references)


def qasper_answer_f1(prediction: str, references: Sequence[str]) -> float:
    """QASPER's Answer F1 of one question: token F1 maximised over the annotators' references."""
    return max_over_references(token_f1, prediction, references)


def answer_scores(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """``{"token_f1": ..., "em": ...}``, each the maximum over ``references``."""
    return {"token_f1": max_over_references(token_f1, prediction, references),
            "em": max_over_references(exact_match, prediction, references)}


# ---- saved generations -----------------------------------------------------------------------


def reader_key(reader: Reader, k: int) -> str:
    """Fingerprint of what produced an answer: the reader's description and k."""
    payload = json.dumps({"reader": reader.describe(), "k": k}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_generations(path: Path) -> dict[str, dict]:
    """The last complete record per query id of a generations file (``{}`` when absent)."""
    records: dict[str, dict] = {}
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: that query is answered again
        if isinstance(record, dict) and "query_id" in record:
            records[record["query_id"]] = record
    return records


def _write_records(path: Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


# ---- running a reader over systems -------------------------------------------------------------


@dataclass
class GenerationResult:
    """Per-query answer scores of every system, and what the run did."""

    reader: dict
    k: int
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """``{system: {metric: {query_id: score}}}``."""
    generated: int = 0
    reused: int = 0
    truncated: int = 0

    def means(self) -> dict[str, dict[str, float]]:
        """``{system: {metric: mean}}``."""
        return {s: {m: float(np.mean(list(v.values()))) for m, v in row.items()} for s, row in self.scores.items()}

    def comparison(self, baseline: str, test: str = "student", alpha: float = 0.05) -> dict[str, dict[str, MetricResult]]:
        """Gains and paired p-values against ``baseline``, as :func:`uae.evaluation.compare` computes them."""
        base = self.scores[baseline]
        return {system: {m: metric_result(row[m], base[m], system == baseline, test=test, alpha=alpha) for m in row}
                for system, row in self.scores.items()}


def evaluate_generation(
    reader: Reader,
    runs: Mapping[str, Run],
    queries: Sequence[Query],
    corpus: Corpus,
    k: int,
    out_dir: str | os.PathLike,
    batch_size: int = 16,
    progress: bool = True,
) -> GenerationResult:
    """Answer every query from each system's top-``k`` and score the answers; resumable.

    Args:
        reader: The reader (see :func:`uae.evaluation.readers.load_reader`).
        runs: ``{system: run}``.
        queries: The evaluated queries (with gold answers).
        corpus: Passage texts.
        k: Passages given to the reader, best first.
        out_dir: Folder of the ``<system>.jsonl`` files.
        batch_size: Questions per ``reader.generate`` call (the unit of saving).
        progress: Show a progress bar.

    Raises:
        ValueError: ``k < 1`` or a query without a gold answer.
    """
    if k < 1:
        raise ValueError(f"the reader needs at least one passage per question, got k={k}")
    if missing := [q.id for q in queries if not any(a.strip() for a in q.answers)]:
        raise ValueError(f"{len(missing)} evaluated queries have no gold answer to score against, e.g. {missing[:5]}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reader.fit(corpus.texts)
    result = GenerationResult(reader=reader.describe(), k=k)
    key = reader_key(reader, k)
    shared: dict[tuple[str, tuple[str, ...]], dict] = {}
    for system, run in runs.items():
        records = _answer_system(reader, key, system, run, queries, corpus, k, out_dir / f"{_file_name(system)}.jsonl",
                                 shared, batch_size, progress, result)
        result.scores[system] = {m: {r["query_id"]: r[m] for r in records} for m in GENERATION_METRICS}
    return result


def _file_name(system: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in system)


def _answer_system(reader: Reader, key: str, system: str, run: Run, queries: Sequence[Query], corpus: Corpus,
                   k: int, path: Path, shared: dict, batch_size: int, progress: bool, result: GenerationResult) -> list[dict]:
    """Records of one system in query order: saved ones reused, the others generated and appended."""
    from uae.progress import progress_bar

    saved = read_generations(path)
    top = {q.id: tuple(rank_passages(run.get(q.id, {}))[:k]) for q in queries}
    done = {q.id: saved[q.id] for q in queries if _reusable(saved.get(q.id), key, top[q.id])}
    result.reused += len(done)
    for record in done.values():
        shared.setdefault((record["question"], tuple(record["passage_ids"])), record)
    todo = [q for q in queries if q.id not in done]
    with open(path, "a", encoding="utf-8") as handle, \
            progress_bar(len(todo), f"answering ({system})", unit="questions", enabled=progress and bool(todo)) as advance:
        for start in range(0, len(todo), batch_size):
            for record in _answer_batch(reader, key, todo[start : start + batch_size], top, corpus, shared, result):
                done[record["query_id"]] = record
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            advance(len(todo[start : start + batch_size]))
    records = [done[q.id] for q in queries]
    _write_records(path, records)  # one line per query, in query order
    return records


def _reusable(record: dict | None, key: str, passage_ids: tuple[str, ...]) -> bool:
    return record is not None and record.get("reader_key") == key and tuple(record.get("passage_ids", ())) == passage_ids


def _answer_batch(reader: Reader, key: str, batch: Sequence[Query], top: dict[str, tuple[str, ...]], corpus: Corpus,
                  shared: dict, result: GenerationResult) -> list[dict]:
    """Records for ``batch``, calling the reader only for (question, passages) not answered yet."""
    fresh = list({(q.text, top[q.id]): q for q in batch if (q.text, top[q.id]) not in shared}.items())
    requests = [ReaderRequest(q.text, tuple(corpus[pid].full_text for pid in pids)) for (_, pids), q in fresh]
    for ((text, pids), _), answer in zip(fresh, reader.generate(requests) if requests else []):
        shared[(text, pids)] = {"answer": answer.text, "truncated": answer.truncated}
        result.generated += 1
        result.truncated += answer.truncated
    records = []
    for query in batch:
        answer = shared[(query.text, top[query.id])]
        golds = [a for a in query.answers if a.strip()]
        records.append({"query_id": query.id, "question": query.text, "passage_ids": list(top[query.id]),
                        "answer": answer["answer"], "answers": golds, **answer_scores(answer["answer"], golds),
                        "truncated": bool(answer["truncated"]), "reader": reader.name, "reader_key": key})
    return records


def generation_section(result: GenerationResult, out_dir: str | os.PathLike) -> str:
    """Markdown for the report: which reader, k, what was generated, where the answers are."""
    reader = result.reader
    lines = [
        f"Reader: `{reader.get('generator')}` — **{reader.get('kind')}**. Each question is answered from the top-{result.k} "
        "passages of each system; `token_f1` and `em` are SQuAD v1.1 Token F1 and exact match (normalised, max over gold "
        "answers); on QASPER, `token_f1` is the official evaluator's Answer F1 (same formula).",
        f"Answers generated in this run: {result.generated} (systems with the same top-{result.k} share one), reused from "
        f"disk: {result.reused} query rows; contexts cut to fit the reader: {result.truncated}.",
        f"Per-query answers: `{Path(out_dir)}/<system>.jsonl`.",
        "",
        "```json\n" + json.dumps(reader, indent=2, default=str) + "\n```",
    ]
    return "\n".join(lines)


def add_answer_quality(settings, runs: Mapping[str, Run], queries: Sequence[Query], corpus: Corpus, out_dir: str | os.PathLike,
                       metrics: dict[str, dict[str, float]], comparison, progress: bool = True) -> str:
    """Run the reader of ``settings`` over ``runs``; add ``token_f1`` and ``em`` to ``metrics`` and ``comparison``.

    Args:
        settings: A :class:`uae.config.GenerationConfig` (backend, k, prompt, max_new_tokens).
        runs: ``{system: run}``, the systems of the metrics table.
        queries: The evaluated queries.
        corpus: Passage texts.
        out_dir: Folder of the per-system generation files.
        metrics: ``{system: {metric: mean}}``, updated in place.
        comparison: The :class:`uae.evaluation.Comparison` of the table, its results updated in place.
        progress: Show progress bars.

    Returns:
        The report section on the reader (:func:`generation_section`).
    """
    from uae.evaluation.readers import load_reader

    reader = load_reader(settings.backend, settings.prompt, settings.max_new_tokens)
    result = evaluate_generation(reader, runs, queries, corpus, settings.k, out_dir, progress=progress)
    for system, row in result.means().items():
        metrics.setdefault(system, {}).update(row)
    for system, row in result.comparison(comparison.baseline, comparison.test, comparison.alpha).items():
        comparison.results.setdefault(system, {}).update(row)
    return generation_section(result, out_dir)
