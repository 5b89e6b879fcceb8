"""The BEIR reader: round trips, and every malformed input named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uae.data import DataError, Dataset, read_dataset, write_dataset
from uae.data.schema import Corpus, Passage, Query
from uae.data.tables import Candidate, read_pools, write_pools


def _write(folder: Path, corpus: list, queries: list, qrels: str = "query-id\tcorpus-id\tscore\nq1\tp1\t1\n") -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in corpus))
    (folder / "queries.jsonl").write_text("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in queries))
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


GOOD_CORPUS = [{"_id": "p1", "title": "T", "text": "alpha beta"}, {"_id": "p2", "text": "gamma", "doc_id": "d1"}]
GOOD_QUERIES = [{"_id": "q1", "text": "what?", "answers": ["alpha"]}]


def test_round_trip_preserves_everything(tmp_path):
    dataset = Dataset(
        name="x",
        corpus=Corpus([Passage("p1", "alpha", "T", "d1"), Passage("p2", "béta ü", "", None)]),
        queries={"q1": Query("q1", "what?", ("alpha", "a"), "d1"), "q2": Query("q2", "none?", ())},
        qrels={"test": {"q1": {"p1": 2, "p2": 0}}, "train": {"q2": {"p2": 1}}},
    )
    loaded = read_dataset(write_dataset(dataset, tmp_path / "d"))
    assert loaded.corpus.passages == dataset.corpus.passages
    assert loaded.queries == dataset.queries
    assert loaded.qrels == dataset.qrels


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "file", "line", "phrase"),
    [
        (GOOD_CORPUS[:1] + ["{not json\n"], GOOD_QUERIES, None, "corpus.jsonl", 2, "one JSON object per line"),
        ([{"title": "x", "text": "y"}], GOOD_QUERIES, None, "corpus.jsonl", 1, "expected field '_id'"),
        ([{"_id": "p1", "text": "  "}], GOOD_QUERIES, None, "corpus.jsonl", 1, "non-empty string in field 'text'"),
        (GOOD_CORPUS + [{"_id": "p1", "text": "dup"}], GOOD_QUERIES, None, "corpus.jsonl", 3, "unique '_id'"),
        (GOOD_CORPUS, [{"_id": "q1", "text": "x", "answers": [3]}], None, "queries.jsonl", 1, "list of strings"),
        (GOOD_CORPUS, ["[1, 2]\n"], None, "queries.jsonl", 1, "expected a JSON object"),
        (GOOD_CORPUS, GOOD_QUERIES, "query-id\tcorpus-id\tscore\nq1\tnope\t1\n", "test.tsv", 2, "unknown 'nope'"),
        (GOOD_CORPUS, GOOD_QUERIES, "q9\tp1\t1\n", "test.tsv", 1, "unknown 'q9'"),
        (GOOD_CORPUS, GOOD_QUERIES, "q1\tp1\thigh\n", "test.tsv", 1, "integer score"),
        (GOOD_CORPUS, GOOD_QUERIES, "q1\tp1\n", "test.tsv", 1, "3 tab-separated fields"),
    ],
)
def test_malformed_input_names_file_line_and_expectation(tmp_path, corpus, queries, qrels, file, line, phrase):
    folder = _write(tmp_path, corpus, queries, qrels or "query-id\tcorpus-id\tscore\nq1\tp1\t1\n")
    with pytest.raises(DataError) as caught:
        read_dataset(folder)
    assert caught.value.path.endswith(file)
    assert caught.value.line == line
    assert phrase in str(caught.value)
    assert f"{file}:{line}" in str(caught.value)


def test_non_utf8_is_reported_with_its_line(tmp_path):
    folder = _write(tmp_path, GOOD_CORPUS, GOOD_QUERIES)
    with open(folder / "corpus.jsonl", "ab") as handle:
        handle.write(b'{"_id": "p3", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"corpus.jsonl:3: expected UTF-8"):
        read_dataset(folder)


def test_queries_without_answers_or_relevant_passages_are_counted_not_dropped(tmp_path):
    queries = GOOD_QUERIES + [{"_id": "q2", "text": "no answer"}, {"_id": "q3", "text": "no gold", "answers": ["x"]}]
    qrels = "query-id\tcorpus-id\tscore\nq1\tp1\t1\nq2\tp1\t1\nq3\tp2\t0\n"
    dataset = read_dataset(_write(tmp_path, GOOD_CORPUS, queries, qrels))
    usable, skipped = dataset.usable_queries("test")
    assert [q.id for q in usable] == ["q1"]
    assert skipped.counts == {"no gold answer": 1, "no relevant passage": 1}
    assert "q2" in skipped.examples["no gold answer"]


def test_scope_rows_follow_doc_id():
    corpus = Corpus([Passage("a", "x", doc_id="d1"), Passage("b", "y", doc_id="d2"), Passage("c", "z", doc_id="d1")])
    assert corpus.rows_in_scope("d1") == [0, 2]
    assert corpus.rows_in_scope("unknown") == []
    assert corpus.rows_in_scope(None) is None


def test_pools_round_trip(tmp_path):
    pools = {"q1": [Candidate("p2", 0.5, False), Candidate("p1", 0.25, True)], "q2": [Candidate("p1", 1.0, True)]}
    assert read_pools(write_pools(pools, tmp_path / "pools.parquet")) == pools


def test_pools_file_with_wrong_columns_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"query_id": ["q"]}), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="missing"):
        read_pools(tmp_path / "bad.parquet")
