"""Property tests (hypothesis): whatever bytes or JSON arrive, the dataset readers return a dataset or
raise :class:`DataError`, and the HTTP service answers 2xx or a 4xx with a message; nothing else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from uae.data import DataError, read_dataset  # noqa: E402
from uae.data.loaders.beir_folder import read_answers  # noqa: E402

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

ODD_TEXT = st.sampled_from(["\ud800", "a\udfffb", "", " ", "\x00", "p1", "q1", "d1", "é", "\u2028", "1e400", "NaN"])
TEXT = st.one_of(st.text(max_size=12), ODD_TEXT)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
                    max_leaves=8)
"""Any JSON value, including what ``json.dumps`` writes but strict JSON forbids (NaN, Infinity) and lone surrogates."""
FIELD = st.one_of(st.sampled_from(["p1", "p2", "q1", "d1", "a passage", "an answer"]), JSON)
ID = st.one_of(st.sampled_from(["p3", "p4", "q2", "q3"]), FIELD)
"""Mostly ids that are new to the file (so a record gets past the uniqueness check to its other fields)."""
STRING = st.one_of(TEXT, TEXT, FIELD)


def _record(keys: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """A JSON line: usually an object with the expected keys holding anything, sometimes any JSON, sometimes any bytes."""
    line = st.fixed_dictionaries({}, optional=keys).map(lambda record: json.dumps(record).encode())
    return st.one_of(line, line, line, JSON.map(lambda value: json.dumps(value).encode()), st.binary(max_size=40))


CORPUS_LINE = _record({"_id": ID, "text": STRING, "title": STRING, "doc_id": STRING})
QUERY_LINE = _record({"_id": ID, "text": STRING, "answers": st.one_of(STRING, st.lists(STRING, max_size=3)), "doc_id": STRING})
GRADE = st.one_of(st.sampled_from(["0", "1", "2", "1.0", "0.9", "-1", "inf", "1e400", "nan", "", "x"]), st.text(max_size=4))
QRELS_FIELD = st.one_of(st.sampled_from(["p1", "p2", "q1", "0", "1", ""]), GRADE)
QRELS_LINE = st.one_of(
    st.tuples(st.sampled_from(["q1"]), st.sampled_from(["p1", "p2"]), GRADE).map(lambda fields: "\t".join(fields).encode()),
    st.tuples(st.sampled_from(["q1"]), st.sampled_from(["p1", "p2"]), GRADE).map(lambda fields: "\t".join(fields).encode()),
    st.lists(QRELS_FIELD, min_size=1, max_size=5).map(lambda fields: "\t".join(fields).encode()),
    st.binary(max_size=30))
GOOD_CORPUS = [b'{"_id": "p1", "text": "alpha"}', b'{"_id": "p2", "text": "beta", "doc_id": "d1"}']
GOOD_QUERIES = [b'{"_id": "q1", "text": "what?", "answers": ["alpha"]}']


def _lines(good: list[bytes], strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A file: the valid lines, then random ones (so the readers get past the first line to them)."""
    return st.lists(strategy, max_size=4).map(lambda extra: b"\n".join(good + extra) + b"\n")


def _read(corpus: bytes, queries: bytes, qrels: bytes):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "qrels").mkdir()
        (folder / "corpus.jsonl").write_bytes(corpus)
        (folder / "queries.jsonl").write_bytes(queries)
        (folder / "qrels" / "test.tsv").write_bytes(qrels)
        try:
            return read_dataset(folder)
        except DataError as err:
            assert str(err).startswith(str(folder)) and err.path.startswith(str(folder))
            return None


GOOD_QRELS = b"query-id\tcorpus-id\tscore\nq1\tp1\t1\n"


@FAST
@given(corpus=_lines(GOOD_CORPUS, CORPUS_LINE), queries=_lines(GOOD_QUERIES, QUERY_LINE),
       qrels=_lines([b"query-id\tcorpus-id\tscore", b"q1\tp1\t1"], QRELS_LINE))
@example(corpus=b"\n".join(GOOD_CORPUS + [b'{"_id": "p3", "text": "a \\ud800 b"}']), queries=b"\n".join(GOOD_QUERIES),
         qrels=GOOD_QRELS)  # the cases issue 16 found, always tried
@example(corpus=b"\n".join(GOOD_CORPUS), queries=b"\n".join(GOOD_QUERIES), qrels=GOOD_QRELS + b"q1\tp2\t1e400\n")
@example(corpus=b"\n".join(GOOD_CORPUS), queries=b"\n".join(GOOD_QUERIES), qrels=GOOD_QRELS + b"q1\tp2\tinf\n")
def test_dataset_readers_return_a_dataset_or_a_data_error(corpus, queries, qrels):
    dataset = _read(corpus, queries, qrels)
    if dataset is not None:  # what was read is text the later stages can write and tokenise
        for passage in dataset.corpus:
            assert isinstance(passage.text, str) and passage.text.strip()
            passage.full_text.encode("utf-8")
        for query in dataset.queries.values():
            assert all(isinstance(answer, str) for answer in query.answers)
            query.text.encode("utf-8")
        assert all(isinstance(grade, int) and grade >= 0 for judged in dataset.qrels["test"].values() for grade in judged.values())


@FAST
@given(raw=st.binary(max_size=200), which=st.sampled_from(["corpus", "queries", "qrels"]))
def test_random_bytes_in_any_dataset_file(raw, which):
    files = {"corpus": b"\n".join(GOOD_CORPUS), "queries": b"\n".join(GOOD_QUERIES), "qrels": b"q1\tp1\t1\n"} | {which: raw}
    _read(files["corpus"], files["queries"], files["qrels"])


@FAST
@given(lines=_lines([], _record({"_id": FIELD, "answers": st.one_of(FIELD, st.lists(FIELD, max_size=3))})))
def test_answers_file_reader(lines):
    from uae.data.schema import Query

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "answers.jsonl"
        path.write_bytes(lines)
        try:
            answers = read_answers(path, {"q1": Query("q1", "what?")})
        except DataError:
            return
    assert all(isinstance(text, str) for texts in answers.values() for text in texts)


# -- the HTTP request models ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tiny_encoder_dir):
    from fastapi.testclient import TestClient

    from uae.data.schema import Corpus, Passage
    from uae.retrieval.retriever import Retriever
    from uae.serving.server import ServerSettings, create_app

    corpus = Corpus(Passage(f"p{i}", f"passage number {i}", doc_id=f"d{i % 2}") for i in range(6))
    retriever = Retriever.build(str(tiny_encoder_dir), corpus, progress=False)
    settings = ServerSettings(max_queries=4, max_query_chars=64, max_k=10, max_passages=3, max_passage_chars=128,
                              max_title_chars=32, max_body_bytes=4096, max_wait_ms=1)
    with TestClient(create_app(retriever, settings)) as test_client:  # server exceptions are raised here, not hidden
        yield test_client


def _object(keys: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    return st.one_of(st.fixed_dictionaries({}, optional=keys), JSON)


REQUESTS = {
    ("POST", "/search"): _object({"queries": st.one_of(JSON, st.lists(_object({"text": FIELD, "scope": FIELD}), max_size=3)),
                                  "k": st.one_of(st.integers(-3, 12), JSON)}),
    ("POST", "/embed"): _object({"texts": st.one_of(JSON, st.lists(FIELD, max_size=3))}),
    ("POST", "/passages"): _object({"passages": st.one_of(JSON, st.lists(
        _object({"id": FIELD, "text": FIELD, "title": FIELD, "doc_id": FIELD}), max_size=3))}),
    ("DELETE", "/passages"): _object({"ids": st.one_of(JSON, st.lists(FIELD, max_size=3))}),
}


@FAST
@given(data=st.data(), endpoint=st.sampled_from(sorted(REQUESTS)), raw=st.booleans())
def test_http_requests_get_a_result_or_a_4xx_with_a_message(client, data, endpoint, raw):
    method, path = endpoint
    if raw:
        body = data.draw(st.binary(max_size=80))
    else:
        body = json.dumps(data.draw(REQUESTS[endpoint])).encode()  # NaN and lone surrogates included, as json.dumps writes them
    response = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 404, 409, 413, 422), (response.status_code, response.text)
    if response.status_code != 200:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.strip()
