"""A labeling job: what to score, the parts it is cut into, its manifest, and the table it ends with.

Labeling is the expensive step (queries x candidates LM passes), so it is built to survive:
work is split into parts of whole queries, the queries that share pooled passages in the same
part (:mod:`uae.labeling.order`), so that a teacher can share a passage's work between them; each
finished part is written to ``parts/part-NNNNN.parquet`` through a temporary name;
``manifest.json`` records what the job is: a hash of each thing the labels depend on (the
teacher and its settings, the prompt templates, the questions and answers, the pools, the text
of every pooled passage, the parts) and one fingerprint over them. Rerunning the same job skips
finished parts, so a crash loses at most the parts in flight and never duplicates a row; a folder
holding another job is refused with a message that says what changed (a passage's text edited
since its scores were made is named, since its old scores must not be reused). When every part
is done, they are concatenated into ``nlls.parquet``, rows in the canonical order (query by
query). The runners (:mod:`uae.labeling.local`, :mod:`uae.labeling.ray`) share this module, so a
job started by one can be finished by the other. A folder planned by an older uae (plan format 1:
parts in input order, a fingerprint without passage texts) resumes with its own parts.

Input is checked before any LM pass: a query listed twice, a pool that names a passage absent
from the corpus or lists one passage twice, is an error naming the query; a query without a
usable answer or without a pool is skipped, and an unusable answer among several is left out
(its ``answer_index`` is kept for the others), each counted in the summary, naming the query (see
:func:`answer_problem` for what makes an answer unusable).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from uae.data.schema import Corpus, Query, SkipReport
from uae.data.tables import NLL_SCHEMA, NO_PASSAGE, NLLRecord, Pools, read_nlls, read_table, write_table
from uae.errors import ManifestMismatch
from uae.io import atomic_write_json
from uae.labeling.order import cut_parts
from uae.teachers.base import NLLRequest
from uae.teachers.dirichlet import tokenize

logger = logging.getLogger(__name__)

NLLS_FILE = "nlls.parquet"
MANIFEST_FILE = "manifest.json"
EMPTY_ANSWER = "empty answer"
NO_WORD_TOKENS = "answer without word tokens"
PLAN_FORMAT = 2
"""How parts are cut and what the fingerprint covers. 2: parts keep the queries that share passages
together, and the fingerprint covers every pooled passage's text and the prompt templates. 1 (no
``plan_format`` in the manifest): parts in input order, no passage texts; still resumed."""
COMPONENT_WORDS = {
    "templates": "the prompt templates changed",
    "queries": "the questions or their gold answers changed",
    "pools": "the pools changed (other passages, or another order)",
}


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
    teacher_stats: dict = field(default_factory=dict)
    """What the teacher reports it did (``Teacher.stats()``: e.g. the hf teacher's prefix reuse and its fallbacks)."""

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
            "teacher_stats": self.teacher_stats,
        }


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


def part_requests(part: Sequence[Query], pools: Pools, corpus: Corpus) -> tuple[list[NLLRequest], list[tuple[str, str, int]]]:
    """A part's requests in the canonical order of the output table, with their ``(query_id, passage_id, answer_index)`` keys."""
    requests: list[NLLRequest] = []
    keys: list[tuple[str, str, int]] = []
    for query in part:
        query_requests, query_keys = requests_for_query(query, [c.passage_id for c in pools[query.id]], corpus)
        requests += query_requests
        keys += [(query.id, pid, answer_index) for pid, answer_index in query_keys]
    return requests, keys


def text_hash(text: str) -> str:
    """A short content hash of a passage's text (what its prompts contain)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def read_manifest(out_dir: str | os.PathLike) -> dict | None:
    """The ``manifest.json`` of a labeling folder, or ``None`` when there is none."""
    path = Path(out_dir) / MANIFEST_FILE
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass
class LabelingJob:
    """The queries of one labeling folder, checked and cut into parts, and what is on disk of them.

    Build one with :meth:`plan`; a runner then calls :meth:`check_manifest`, labels the
    :meth:`pending` parts (:meth:`write_part` each) and ends with :meth:`finish`.

    Attributes:
        out_dir: The labeling folder.
        parts: The usable queries, at most ``part_queries`` per part (see :func:`uae.labeling.order.cut_parts`).
        pools: The candidate pools.
        summary: What the run did; the plan fills its queries and skips.
        passages: ``{passage_id: text_hash}`` of every pooled passage of the parts.
        part_queries: The most queries a part holds.
        plan_format: How the parts were cut: :data:`PLAN_FORMAT`, or 1 for a job planned by a
            uae before it (parts in input order, a fingerprint without passage texts), resumed as it was.
    """

    out_dir: Path
    parts: list[list[Query]]
    pools: Pools
    summary: LabelingSummary
    passages: dict[str, str] = field(default_factory=dict)
    part_queries: int = 64
    plan_format: int = 2

    @classmethod
    def plan(cls, queries: Sequence[Query], pools: Pools, corpus: Corpus, out_dir: str | os.PathLike, part_queries: int,
             teacher: dict) -> LabelingJob:
        """Check the queries and their pools, count what is skipped, and cut the usable queries into parts.

        Parts keep the queries that share passages together (:func:`uae.labeling.order.cut_parts`);
        a folder holding a job planned by an older uae (no ``plan_format`` in its manifest) keeps
        that job's parts, in input order, so that it resumes.

        Args:
            queries: Queries to label; those without a usable answer or a pool are skipped and counted.
            pools: Candidate pools, ``{query_id: [Candidate, ...]}``.
            corpus: Passage texts (to check the pools against, and to fingerprint).
            out_dir: The labeling folder.
            part_queries: The most queries per part file (the unit of resumption).
            teacher: The teacher's description (``Teacher.describe()``), part of the job's fingerprint.

        Raises:
            ValueError: ``part_queries < 1``, a query listed twice, or a bad pool.
        """
        if part_queries < 1:
            raise ValueError(f"part_queries must be at least 1, got {part_queries}")
        summary = LabelingSummary(teacher=teacher)
        todo = _usable(queries, pools, corpus, summary.skipped)
        summary.queries = len(todo)
        existing = read_manifest(out_dir)
        plan_format = PLAN_FORMAT if existing is None else int(existing.get("plan_format", 1))
        if plan_format == 1:
            parts = [todo[i : i + part_queries] for i in range(0, len(todo), part_queries)]
        else:
            parts = cut_parts(todo, pools, part_queries)
        passages = {c.passage_id: text_hash(corpus[c.passage_id].full_text) for query in todo for c in pools[query.id]}
        return cls(Path(out_dir), parts, pools, summary, passages, part_queries, plan_format)

    def components(self) -> dict[str, str]:
        """A hash of each thing the labels depend on; the manifest keeps them to say what changed."""
        teacher = {k: v for k, v in self.summary.teacher.items() if k != "templates"}
        return {
            "teacher": _digest(teacher),
            "templates": _digest(self.summary.teacher.get("templates")),
            "queries": _digest(sorted([q.id, q.text, list(q.answers)] for part in self.parts for q in part)),
            "pools": _digest(sorted([q.id, [c.passage_id for c in self.pools[q.id]]] for part in self.parts for q in part)),
            "passages": _digest(self.passages),
            "parts": _digest([[q.id for q in part] for part in self.parts]),
        }

    def fingerprint(self) -> str:
        """One hash of the job: teacher, prompt templates, queries and answers, pools, every pooled passage's text, parts."""
        if self.plan_format == 1:
            return self._fingerprint_v1()
        return _digest(self.components())

    def _fingerprint_v1(self) -> str:
        """The fingerprint of plan format 1 (query ids, texts, answers, pools per part, teacher), as that uae wrote it."""
        digest = hashlib.sha256()
        for part in self.parts:
            for query in part:
                digest.update(json.dumps([query.id, query.text, query.answers, [c.passage_id for c in self.pools[query.id]]]).encode())
            digest.update(b"|")
        digest.update(json.dumps(self.summary.teacher, sort_keys=True, default=str).encode())
        return digest.hexdigest()

    def manifest(self) -> dict:
        """What ``manifest.json`` records of this job."""
        return {
            "plan_format": PLAN_FORMAT,
            "job": self.fingerprint(),
            "teacher": self.summary.teacher,
            "parts": len(self.parts),
            "part_queries": self.part_queries,
            "queries": sum(len(p) for p in self.parts),
            "components": self.components(),
            "passages": self.passages,
        }

    def check_manifest(self) -> None:
        """Write ``manifest.json``, or check that the one there describes this job.

        Raises:
            ManifestMismatch: the folder holds labels of another job; the message says what changed.
        """
        existing = read_manifest(self.out_dir)
        if existing is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dir / MANIFEST_FILE, self.manifest())
            return
        if existing.get("job") == self.fingerprint():
            if self.plan_format == 1:
                logger.warning("%s: resuming a job planned by an older uae (plan format 1): its parts keep their input "
                               "order, and its fingerprint does not cover the passages' texts, so a passage edited since "
                               "then goes unnoticed", self.out_dir)
            return
        raise ManifestMismatch(f"{self.out_dir} holds labels of another job: {self._differences(existing)}; "
                               f"use a new output folder, or delete this one to start over")

    def _differences(self, existing: dict) -> str:
        """What differs between the job in ``existing`` (a manifest) and this one, in words."""
        if self.plan_format == 1:
            return (f"it was planned by an older uae (teacher {existing.get('teacher', {}).get('teacher')!r}, "
                    f"{existing.get('queries')} queries), whose fingerprint cannot tell which of the teacher, the "
                    f"prompts, the questions and answers, the pools or the parts changed")
        before, now = existing.get("components", {}), self.components()
        changed = [name for name in now if before.get(name) != now[name]]
        words = []
        for name in changed:
            if name == "teacher":
                words.append(f"the teacher changed ({existing.get('teacher', {}).get('teacher')!r} then, "
                             f"{self.summary.teacher.get('teacher')!r} now, or its settings)")
            elif name == "passages":
                words.append(self._passage_changes(existing.get("passages", {})))
            elif name == "parts" and "queries" not in changed and "pools" not in changed:
                words.append(f"the parts are cut differently (at most {existing.get('part_queries')} queries per part "
                             f"then, {self.part_queries} now)")
            elif name != "parts":
                words.append(COMPONENT_WORDS[name])
        return "; ".join(words) or "its fingerprint differs"

    def _passage_changes(self, before: dict[str, str]) -> str:
        edited = sorted(pid for pid, digest in self.passages.items() if pid in before and before[pid] != digest)
        if edited:
            return (f"the text of {len(edited)} pooled passage(s) changed since these labels were made "
                    f"(e.g. {edited[:5]}), so their scores cannot be reused")
        return "other passages are pooled"

    def part_path(self, number: int) -> Path:
        """Where part ``number`` is written."""
        return self.out_dir / "parts" / f"part-{number:05d}.parquet"

    def pending(self) -> list[int]:
        """The numbers of the parts not on disk yet (the others are reused); counts them in the summary."""
        pending = [n for n in range(len(self.parts)) if not self.part_path(n).is_file()]
        self.summary.parts_reused = len(self.parts) - len(pending)
        return pending

    def pair_count(self, numbers: Iterable[int]) -> int:
        """(query, passage or none, answer) pairs the parts ``numbers`` score: the unit of progress."""
        return sum(_pair_count(query, self.pools) for n in numbers for query in self.parts[n])

    def write_part(self, number: int, table: pa.Table) -> None:
        """Write part ``number``'s rows (through a temporary name)."""
        write_table(table, self.part_path(number))

    def finish(self) -> LabelingSummary:
        """Concatenate the parts into ``nlls.parquet``, count pairs and truncations, write ``labeling_summary.json``."""
        tables = [read_table(self.part_path(n), NLL_SCHEMA) for n in range(len(self.parts))]
        table = pa.concat_tables(tables) if tables else NLL_SCHEMA.empty_table()
        self.summary.pairs = int(pc.sum(pc.not_equal(table["passage_id"], NO_PASSAGE)).as_py() or 0)
        self.summary.truncated = int(pc.sum(table["truncated"]).as_py() or 0)
        write_table(table, self.out_dir / NLLS_FILE)
        atomic_write_json(self.out_dir / "labeling_summary.json", self.summary.to_dict())
        return self.summary


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


def read_labels(out_dir: str | os.PathLike) -> list[NLLRecord]:
    """The NLL records of a finished labeling folder (or of an ``nlls.parquet`` file)."""
    path = Path(out_dir)
    return read_nlls(path / NLLS_FILE if path.is_dir() else path)


def teacher_name(labels: str | os.PathLike) -> str:
    """The teacher recorded in a labels folder's ``manifest.json`` (or beside ``nlls.parquet``); else the path."""
    path = Path(labels)
    manifest = (path if path.is_dir() else path.parent) / MANIFEST_FILE
    if manifest.is_file():
        teacher = json.loads(manifest.read_text()).get("teacher", {})
        if isinstance(teacher, dict) and teacher.get("teacher"):
            return str(teacher["teacher"])
    return str(path)
