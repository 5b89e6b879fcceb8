"""The labeling planner: parts keep the queries that share passages, a teacher sees a passage's requests together,
and the manifest says what changed (a passage's text above all); a job planned by an older uae still resumes."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from labeling_jobs import make_job

from uae.data.schema import Corpus, Passage, Query
from uae.data.tables import NO_PASSAGE, Candidate, nll_records_to_table
from uae.errors import ManifestMismatch
from uae.labeling import label_pools, read_labels
from uae.labeling.jobs import part_requests
from uae.labeling.order import cut_parts, query_walk, sharing_chunks
from uae.teachers import DirichletTeacher, NLLRequest
from uae.teachers.base import DEFAULT_WITH_PASSAGE, DEFAULT_WITHOUT_PASSAGE


def scoped_job(documents: dict[str, int], pool_size: int = 3) -> tuple[Corpus, list[Query], dict]:
    """``documents[name]`` questions per document, each pooled from its document's 4 passages; questions interleaved across documents."""
    corpus = Corpus(Passage(f"{doc}-p{i}", f"{doc} passage {i} says value{i} about the {doc} river.", doc_id=doc)
                    for doc in documents for i in range(4))
    queries, pools = [], {}
    for turn in range(max(documents.values())):
        for doc, count in documents.items():
            if turn < count:
                query = Query(f"{doc}-q{turn}", f"what does {doc} passage {turn % 4} say?", (f"value{turn % 4}",), doc_id=doc)
                queries.append(query)
                pools[query.id] = [Candidate(f"{doc}-p{(turn + j) % 4}", 1.0, j == 0) for j in range(pool_size)]
    return corpus, queries, pools


class RecordingTeacher(DirichletTeacher):
    """The Dirichlet teacher, keeping the requests of every ``score`` call."""

    def __init__(self, **options):
        super().__init__(**options)
        self.calls: list[list[NLLRequest]] = []

    def score(self, requests):
        self.calls.append(list(requests))
        return super().score(requests)


def test_parts_keep_the_queries_that_share_passages_together() -> None:
    corpus, queries, pools = scoped_job({"a": 3, "b": 5, "c": 2, "d": 9})
    parts = cut_parts(queries, pools, part_queries=6)
    documents = [[q.doc_id for q in part] for part in parts]
    # each document is one group; a group that does not fit beside the last starts a part; d (9 > 6) is cut in 6 + 3
    assert documents == [["a"] * 3, ["b"] * 5, ["c"] * 2, ["d"] * 6, ["d"] * 3]
    assert sorted(q.id for part in parts for q in part) == sorted(q.id for q in queries)
    assert max(len(part) for part in parts) <= 6
    joined = cut_parts(queries, pools, part_queries=8)
    assert [[q.doc_id for q in part] for part in joined] == [["a"] * 3 + ["b"] * 5, ["c"] * 2, ["d"] * 8, ["d"]]


def test_a_teacher_gets_each_passage_once_per_part_and_the_table_stays_in_query_order(tmp_path: Path) -> None:
    corpus, queries, pools = scoped_job({"a": 4, "b": 4})
    queries[0] = Query(queries[0].id, queries[0].text, ("value0", "the value0"), doc_id="a")
    teacher = RecordingTeacher()
    label_pools(queries, pools, corpus, teacher, tmp_path, part_queries=4, chunk_requests=6, progress=False)
    seen_in: dict[str, set[int]] = {}
    for number, call in enumerate(teacher.calls):
        keys = [(r.passage, r.question if r.passage is None else None) for r in call]
        runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
        assert len(runs) == len(set(runs)), "requests sharing a passage must be side by side"
        for key in set(keys):
            seen_in.setdefault(str(key), set()).add(number)
    assert all(len(calls) == 1 for calls in seen_in.values()), "a passage group is never split across calls"
    assert len(teacher.calls) > 2, "the chunks are small enough to be several per part"
    records = read_labels(tmp_path)
    order = [(r.query_id, r.passage_id, r.answer_index) for r in records]
    parts = cut_parts(queries, pools, 4)
    assert [{q.doc_id for q in part} for part in parts] == [{"a"}, {"b"}]
    expected = []
    for query in (q for part in parts for q in part):
        for index in range(len(query.answers)):
            expected += [(query.id, NO_PASSAGE, index)] + [(query.id, c.passage_id, index) for c in pools[query.id]]
    assert order == expected
    reference = DirichletTeacher()
    reference.fit(corpus.texts)
    for record in records:
        query = next(q for q in queries if q.id == record.query_id)
        passage = None if record.passage_id == NO_PASSAGE else corpus[record.passage_id].full_text
        [alone] = reference.score([NLLRequest(query.text, query.answers[record.answer_index], passage)])
        assert record.nll == pytest.approx(alone.nll, abs=1e-12)


def test_sharing_chunks_keep_groups_whole_unless_larger_than_a_chunk() -> None:
    requests = [NLLRequest(f"q{i}", "a", passage) for i, passage in enumerate("PQPRQP")] + [NLLRequest("q9", "a")] * 2
    requests += [NLLRequest(f"q{i}", "a", "S") for i in range(5)]
    chunks = sharing_chunks(requests, chunk=4)
    assert chunks == [[0, 2, 5], [1, 4, 3], [6, 7], [8, 9, 10, 11, 12]]
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(requests)))


class TemplatedTeacher(DirichletTeacher):
    """The Dirichlet teacher describing prompt templates, as LM teachers do."""

    def __init__(self, with_passage: str = DEFAULT_WITH_PASSAGE):
        super().__init__()
        self.with_passage = with_passage

    def describe(self):
        return {**super().describe(), "templates": {"with_passage": self.with_passage, "without_passage": DEFAULT_WITHOUT_PASSAGE}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda job: job[0].passages.__setitem__(3, Passage("p003", "a new text for p003")),
         r"the text of 1 pooled passage\(s\) changed since these labels were made \(e\.g\. \['p003'\]\)"),
        (lambda job: job.append(TemplatedTeacher("Passage: {passage}\nQ: {question}\nA: {answer}")), "the prompt templates changed"),
        (lambda job: job.append(DirichletTeacher(mu=50)), r"the teacher changed \('dirichlet' then, 'dirichlet:mu=50' now"),
        (lambda job: job[1].__setitem__(0, Query("q000", job[1][0].text, ("another answer",))), "the questions or their gold answers changed"),
        (lambda job: job.append(4), r"the parts are cut differently \(at most 3 queries per part then, 4 now\)"),
    ],
    ids=["passage text", "templates", "teacher", "answers", "parts"],
)
def test_another_job_in_the_folder_is_refused_saying_what_changed(tmp_path: Path, change, message: str) -> None:
    corpus, queries, pools = make_job(n_queries=6, pool_size=3, n_passages=8)
    label_pools(queries, pools, corpus, TemplatedTeacher(), tmp_path, part_queries=3, progress=False)
    job = [corpus, queries, pools]
    change(job)
    teacher = next((t for t in job[3:] if not isinstance(t, int)), TemplatedTeacher())
    part_queries = next((t for t in job[3:] if isinstance(t, int)), 3)
    with pytest.raises(ManifestMismatch, match=message):
        label_pools(queries, pools, corpus, teacher, tmp_path, part_queries=part_queries, progress=False)


def test_the_manifest_records_every_pooled_passage_hash(tmp_path: Path) -> None:
    corpus, queries, pools = make_job(n_queries=4, pool_size=2, n_passages=8)
    label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    pooled = {c.passage_id for pool in pools.values() for c in pool}
    assert set(manifest["passages"]) == pooled
    assert manifest["passages"]["p001"] == hashlib.sha256(corpus["p001"].full_text.encode()).hexdigest()[:16]
    assert manifest["plan_format"] == 2 and set(manifest["components"]) >= {"passages", "templates", "teacher"}


def old_fingerprint(parts: list[list[Query]], pools: dict, teacher: dict) -> str:
    """The job fingerprint as uae wrote it before plan format 2 (query ids, texts, answers, pool ids per part; teacher)."""
    digest = hashlib.sha256()
    for part in parts:
        for query in part:
            digest.update(json.dumps([query.id, query.text, query.answers, [c.passage_id for c in pools[query.id]]]).encode())
        digest.update(b"|")
    digest.update(json.dumps(teacher, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def test_a_job_planned_by_an_older_uae_resumes_with_its_own_parts(tmp_path: Path, caplog) -> None:
    corpus, queries, pools = make_job(n_queries=6, pool_size=3, n_passages=6)
    queries = [queries[i] for i in (0, 3, 1, 4, 2, 5)]  # input order differs from the order the planner chooses now
    reference = tmp_path / "reference"
    label_pools(queries, pools, corpus, DirichletTeacher(), reference, part_queries=2, progress=False)
    nlls = {(r.query_id, r.passage_id, r.answer_index): r for r in read_labels(reference)}

    old = tmp_path / "old"
    old_parts = [queries[i : i + 2] for i in range(0, 6, 2)]  # the old planner: input order
    manifest = {"job": old_fingerprint(old_parts, pools, DirichletTeacher().describe()), "teacher": DirichletTeacher().describe(),
                "parts": 3, "queries": 6}
    (old / "parts").mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps(manifest))
    first = [nlls[(q.id, pid, 0)] for q in old_parts[0] for pid in [NO_PASSAGE] + [c.passage_id for c in pools[q.id]]]
    pq.write_table(nll_records_to_table(first), old / "parts" / "part-00000.parquet")

    with caplog.at_level(logging.WARNING, logger="uae.labeling.jobs"):
        summary = label_pools(queries, pools, corpus, DirichletTeacher(), old, part_queries=2, progress=False)
    assert summary.parts_reused == 1
    assert any("older uae" in record.message for record in caplog.records)
    resumed = read_labels(old)
    assert [r.query_id for r in resumed[::4]] == [q.id for q in queries], "the old parts, in input order"
    assert {(r.query_id, r.passage_id, r.answer_index): r.nll for r in resumed} == {k: r.nll for k, r in nlls.items()}
    assert json.loads((old / "manifest.json").read_text()) == manifest

    with pytest.raises(ManifestMismatch, match="planned by an older uae"):
        label_pools(queries, pools, corpus, DirichletTeacher(mu=5), old, part_queries=2, progress=False)


def test_part_requests_list_each_answer_alone_then_with_each_passage() -> None:
    corpus, queries, pools = make_job(n_queries=2, pool_size=2)
    queries[0] = Query("q000", queries[0].text, ("value0", "", "value 0"))
    requests, keys = part_requests(queries, pools, corpus)
    assert keys == [("q000", NO_PASSAGE, 0), ("q000", "p000", 0), ("q000", "p001", 0),
                    ("q000", NO_PASSAGE, 2), ("q000", "p000", 2), ("q000", "p001", 2),
                    ("q001", NO_PASSAGE, 0), ("q001", "p001", 0), ("q001", "p002", 0)]
    assert requests[1] == NLLRequest(queries[0].text, "value0", corpus["p000"].full_text)
    assert requests[3] == NLLRequest(queries[0].text, "value 0", None)


def test_a_group_larger_than_a_part_is_cut_where_it_shares_least() -> None:
    """Six linked queries, parts of three: the cut feeds as few (part, passage) pairs as the best of all cuts."""
    pooled = {"q0": "CF", "q1": "CE", "q2": "FE", "q3": "BF", "q4": "CD", "q5": "FD"}
    queries = [Query(qid, f"question {qid}", ("a",)) for qid in pooled]
    pools = {qid: [Candidate(p, 1.0, False) for p in passages] for qid, passages in pooled.items()}

    def feeds(parts: list[list[str]]) -> int:
        return sum(len({p for qid in part for p in pooled[qid]}) for part in parts)

    ids = list(pooled)
    best = min(feeds([list(first), [q for q in ids if q not in first]])
               for first in itertools.combinations(ids, 3))
    parts = [[q.id for q in part] for part in cut_parts(queries, pools, part_queries=3)]
    assert sorted(q for part in parts for q in part) == ids and all(len(part) == 3 for part in parts)
    assert feeds(parts) == best == 7
    walked = [q.id for q in query_walk(queries, pools)[0]]
    assert feeds([walked[:3], walked[3:]]) == 8, "the breadth-first cut this replaces fed one passage more"
