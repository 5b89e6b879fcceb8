"""Input checks of the labeling runner: empty answers counted, truncation counted, bad ids refused, tokens reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labeling_jobs import make_job, write_job
from rich.progress import Progress
from typer.testing import CliRunner

from uae.cli import app
from uae.data.schema import Passage, Query
from uae.data.tables import NO_PASSAGE, Candidate
from uae.labeling import label_pools, read_labels
from uae.labeling.local import TokenRateColumn
from uae.teachers import DirichletTeacher
from uae.teachers.hf import HFTeacher


class CountingTeacher(DirichletTeacher):
    """The Dirichlet teacher, reporting 10 tokens per request like an LM teacher would."""

    def __init__(self):
        super().__init__()
        self.tokens_processed = 0

    def score(self, requests):
        self.tokens_processed += 10 * len(requests)
        return super().score(requests)


def test_empty_answers_are_left_out_and_counted(tmp_path: Path) -> None:
    corpus, queries, pools = make_job(n_queries=3, pool_size=2)
    queries[0] = Query("q000", queries[0].text, ("", "value0", "  "))
    queries[1] = Query("q001", queries[1].text, ("   ",))
    summary = label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path, progress=False)
    assert summary.skipped.counts == {"empty answer (others of the query kept)": 2, "no gold answer": 1}
    assert summary.skipped.examples["empty answer (others of the query kept)"] == ["q000#0", "q000#2"]
    q0 = {(r.passage_id, r.answer_index) for r in read_labels(tmp_path) if r.query_id == "q000"}
    assert q0 == {(NO_PASSAGE, 1), ("p000", 1), ("p001", 1)}, "the kept answer keeps its index"
    assert summary.queries == 2 and summary.pairs == 2 * 2
    assert json.loads((tmp_path / "labeling_summary.json").read_text())["skipped"]["no gold answer"] == 1


def test_answers_without_word_tokens_are_left_out_and_counted_naming_the_query(tmp_path: Path) -> None:
    corpus, queries, pools = make_job(n_queries=4, pool_size=2)
    queries[0] = Query("q000", queries[0].text, ("%",))  # no usable answer: the query is skipped
    queries[1] = Query("q001", queries[1].text, ("!!", "value1", "?"))  # one usable answer: labelled, two counted
    queries[2] = Query("q002", queries[2].text, ("", "%"))  # an empty and a word-less answer: skipped
    summary = label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path, progress=False)
    assert summary.skipped.counts == {"no usable answer (none has a word token)": 2,
                                      "answer without word tokens (others of the query kept)": 2}
    assert summary.skipped.examples["no usable answer (none has a word token)"] == ["q000", "q002"]
    assert summary.skipped.examples["answer without word tokens (others of the query kept)"] == ["q001#0", "q001#2"]
    keys = {(r.query_id, r.passage_id, r.answer_index) for r in read_labels(tmp_path)}
    assert keys == {("q001", pid, 1) for pid in (NO_PASSAGE, "p001", "p002")} | {("q003", pid, 0) for pid in (NO_PASSAGE, "p003", "p004")}
    assert summary.queries == 2 and summary.pairs == 2 * 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda qs, ps: qs.append(qs[0]), "'q000' is listed twice"),
        (lambda qs, ps: ps["q001"].append(Candidate("nope", 0.0, False)), r"query 'q001' names 1 passage\(s\) not in the corpus.*nope"),
        (lambda qs, ps: ps["q002"].append(ps["q002"][0]), r"query 'q002' lists passage\(s\) \['p002'\] more than once"),
    ],
    ids=["duplicate query", "unknown passage", "repeated passage"],
)
def test_bad_ids_are_refused_before_any_work(tmp_path: Path, change, message: str) -> None:
    corpus, queries, pools = make_job(n_queries=3, pool_size=2)
    change(queries, pools)
    with pytest.raises(ValueError, match=message):
        label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path, progress=False)
    assert not (tmp_path / "parts").exists()


def test_cli_refuses_pools_of_unknown_queries(tmp_path: Path) -> None:
    corpus, queries, pools = make_job(n_queries=3, pool_size=2)
    data, _ = write_job(tmp_path, corpus, queries, pools)
    _, pools_path = write_job(tmp_path / "other", corpus, queries, {**pools, "q999": pools["q000"]})
    result = CliRunner().invoke(app, ["label", str(data), "--pools", str(pools_path), "--out", str(tmp_path / "labels")])
    assert result.exit_code == 2
    assert "q999" in result.output and "not in" in result.output


def test_passages_over_the_context_are_truncated_and_counted(tiny_lm_builder, tmp_path: Path) -> None:
    teacher = HFTeacher(str(tiny_lm_builder("llama", 48)))
    corpus, queries, pools = make_job(n_queries=2, pool_size=2)
    corpus.passages[1] = Passage("p001", "the old stone bridge crosses the river near the mill. " * 10)
    summary = label_pools(queries, pools, corpus, teacher, tmp_path, progress=False)
    cut = {(r.query_id, r.passage_id) for r in read_labels(tmp_path) if r.truncated}
    assert cut == {("q000", "p001"), ("q001", "p001")}
    assert summary.truncated == 2
    assert json.loads((tmp_path / "labeling_summary.json").read_text())["truncated_passages"] == 2


def test_tokens_reported_by_the_teacher_reach_the_summary_and_the_bar(tmp_path: Path) -> None:
    corpus, queries, pools = make_job(n_queries=4, pool_size=3)
    summary = label_pools(queries, pools, corpus, CountingTeacher(), tmp_path, part_queries=2, chunk_requests=5, progress=False)
    assert summary.tokens == 10 * 4 * (3 + 1)
    assert json.loads((tmp_path / "labeling_summary.json").read_text())["tokens"] == 160
    assert label_pools(queries, pools, corpus, DirichletTeacher(), tmp_path / "plain", progress=False).tokens is None

    progress = Progress()
    task_id = progress.add_task("labeling", total=10, tokens=None)
    assert str(TokenRateColumn().render(progress.tasks[0])) == ""
    progress.update(task_id, advance=5, tokens=1000)
    assert str(TokenRateColumn().render(progress.tasks[0])).endswith("tok/s")
