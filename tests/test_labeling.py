"""The labeling runner: every pair once, the no-passage NLL once per answer, resume after a crash."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from uae.data.schema import Corpus, Passage, Query
from uae.data.tables import NO_PASSAGE, Candidate
from uae.errors import ManifestMismatch
from uae.labeling import label_pools, read_labels
from uae.teachers import DirichletTeacher
from uae.teachers.base import NLLResult


@pytest.fixture
def job():
    corpus = Corpus([Passage(f"p{i}", f"passage {i} says value{i} and more") for i in range(6)])
    queries = [Query(f"q{i}", f"what is value {i}?", (f"value{i}",) if i != 4 else ()) for i in range(6)]
    queries[0] = Query("q0", "what is value 0?", ("value0", "value 0"))
    pools = {q.id: [Candidate(f"p{(int(q.id[1:]) + j) % 6}", 1.0 - j / 10, j == 0) for j in range(3)] for q in queries}
    return corpus, queries, pools


def test_every_pair_once_and_skips_counted(tmp_path, job):
    corpus, queries, pools = job
    summary = label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path, part_queries=2, progress=False)
    records = read_labels(tmp_path)
    keys = [(r.query_id, r.passage_id, r.answer_index) for r in records]
    assert len(keys) == len(set(keys))
    labeled = {q.id for q in queries if q.answers}
    assert {r.query_id for r in records} == labeled
    assert summary.skipped.counts == {"no gold answer": 1}
    # q0 has two answers: one no-passage row per answer plus one row per (answer, passage)
    q0 = [r for r in records if r.query_id == "q0"]
    assert len(q0) == 2 * (1 + 3)
    assert sum(r.passage_id == NO_PASSAGE for r in q0) == 2
    assert summary.pairs == sum(len(q.answers) * 3 for q in queries)


class FlakyTeacher(DirichletTeacher):
    """Fails on its ``fail_at``-th call, like a process killed mid-job."""

    def __init__(self, fail_at: int):
        super().__init__()
        self.calls, self.fail_at = 0, fail_at

    def score(self, requests) -> list[NLLResult]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated crash")
        return super().score(requests)

    def describe(self):
        return DirichletTeacher().describe()


def test_resume_after_crash_equals_uninterrupted_run(tmp_path, job):
    corpus, queries, pools = job
    reference = tmp_path / "reference"
    label_pools(queries, pools, corpus, DirichletTeacher(), reference, part_queries=2, chunk_requests=4, progress=False)

    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        label_pools(queries, pools, corpus, FlakyTeacher(fail_at=5), resumed, part_queries=2, chunk_requests=4, progress=False)
    assert not (resumed / "nlls.parquet").exists()
    done_before = sorted(p.name for p in (resumed / "parts").glob("*.parquet"))
    assert done_before, "the first parts should be kept"
    summary = label_pools(queries, pools, corpus, DirichletTeacher(), resumed, part_queries=2, chunk_requests=4, progress=False)
    assert summary.parts_reused == len(done_before)
    assert pq.read_table(resumed / "nlls.parquet").equals(pq.read_table(reference / "nlls.parquet"))


def test_another_job_in_the_same_folder_is_refused(tmp_path, job):
    corpus, queries, pools = job
    label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path, progress=False)
    with pytest.raises(ManifestMismatch, match="another job"):
        label_pools(queries, pools, corpus, DirichletTeacher(mu=10), tmp_path, progress=False)
