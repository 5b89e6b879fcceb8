"""The synthetic quickstart dataset: deterministic, split by entity, one answer passage per question."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from uae.data import Dataset, read_dataset, write_dataset
from uae.data.synthetic import MAX_WORDS, MIN_WORDS, make_quickstart_dataset


def _words(text: str) -> str:
    """Lower-cased words, space-separated and space-padded, for whole-word matching."""
    return " " + " ".join(re.findall(r"\w+", text.lower())) + " "


def _contains(text: str, value: str) -> bool:
    """Whether the words of ``value`` occur, in order and adjacent, in ``text``."""
    return _words(value) in _words(text)


def _snapshot(dataset: Dataset) -> tuple:
    return (dataset.name, list(dataset.corpus), list(dataset.queries.items()), dataset.qrels)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return make_quickstart_dataset()


def _gold(dataset: Dataset, split: str, query_id: str) -> str:
    judged = dataset.qrels[split][query_id]
    assert list(judged.values()) == [1], f"{query_id}: expected one grade-1 passage, got {judged}"
    return next(iter(judged))


def test_same_seed_same_dataset_other_seed_other_dataset(dataset: Dataset) -> None:
    assert _snapshot(make_quickstart_dataset()) == _snapshot(dataset)
    assert _snapshot(make_quickstart_dataset(seed=14)) != _snapshot(dataset)


def test_same_seed_same_bytes_on_disk(tmp_path) -> None:
    first = write_dataset(make_quickstart_dataset(seed=5, n_entities=20), tmp_path / "a")
    second = write_dataset(make_quickstart_dataset(seed=5, n_entities=20), tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_splits_partition_queries_and_entities(dataset: Dataset) -> None:
    assert sorted(dataset.qrels) == ["dev", "test", "train"]
    entities: dict[str, set[str]] = {}
    for split, qrels in dataset.qrels.items():
        assert qrels, f"split {split} is empty"
        entities[split] = {dataset.corpus[_gold(dataset, split, qid)].title for qid in qrels}
    assert not entities["train"] & entities["dev"]
    assert not entities["train"] & entities["test"]
    assert not entities["dev"] & entities["test"]
    judged = [qid for qrels in dataset.qrels.values() for qid in qrels]
    assert sorted(judged) == sorted(dataset.queries)


def test_each_question_has_exactly_one_passage_with_its_answer(dataset: Dataset) -> None:
    words = {p.id: _words(p.full_text) for p in dataset.corpus}
    for split, qrels in dataset.qrels.items():
        for qid in qrels:
            query = dataset.queries[qid]
            assert len(query.answers) == 1 and query.answers[0].strip()
            needle = _words(query.answers[0])
            holders = [pid for pid, text in words.items() if needle in text]
            assert holders == [_gold(dataset, split, qid)], f"{qid} {query.answers}: held by {holders}"
            assert not _contains(query.text, query.answers[0])


def test_other_passages_of_the_entity_never_hold_the_answer(dataset: Dataset) -> None:
    by_title = defaultdict(list)
    for passage in dataset.corpus:
        by_title[passage.title].append(passage)
    for split, qrels in dataset.qrels.items():
        for qid in qrels:
            gold = dataset.corpus[_gold(dataset, split, qid)]
            others = [p for p in by_title[gold.title] if p.id != gold.id]
            assert len(others) >= 2, f"{qid}: expected distractors about {gold.title}"
            answer = dataset.queries[qid].answers[0]
            assert not [p.id for p in others if _contains(p.full_text, answer)]


def test_passages_and_ids_have_the_promised_shape(dataset: Dataset) -> None:
    for passage in dataset.corpus:
        assert re.fullmatch(r"p\d{5}", passage.id)
        assert passage.doc_id is None and passage.title
        assert MIN_WORDS <= len(passage.text.split()) <= MAX_WORDS, passage
    for query in dataset.queries.values():
        assert re.fullmatch(r"q\d{5}", query.id)
        assert query.doc_id is None and query.text.endswith("?")


def test_write_read_round_trip(dataset: Dataset, tmp_path) -> None:
    loaded = read_dataset(write_dataset(dataset, tmp_path / "quickstart"), name=dataset.name)
    assert _snapshot(loaded) == _snapshot(dataset)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_entities"):
        make_quickstart_dataset(n_entities=2)
    with pytest.raises(ValueError, match="split_fractions"):
        make_quickstart_dataset(split_fractions=(0.5, 0.2, 0.2))
