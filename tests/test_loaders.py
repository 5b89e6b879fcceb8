"""Dataset loaders, chunking, splits by document, download and `uae data`.

Fixtures in tests/fixtures/ are tiny hand-written files in each dataset's official format.
The tests at the end read the real copies in ../shared/data and skip when it is absent.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uae.data import DataError, Dataset, read_dataset
from uae.data.chunking import Chunk, chunk_text, spans_to_chunks
from uae.data.loaders import (
    DATASETS,
    beir_folder,
    dataset_stats,
    load,
    load_named,
    loader_options,
    newsqa,
    nq_qed,
    pubmedqa,
    qasper,
    qmsum,
    squad,
)
from uae.data.loaders.download import download, sha256_of
from uae.data.loaders.prepare import parse_options, prepare
from uae.data.loaders.registry import DatasetInfo, RemoteFile
from uae.data.schema import Corpus, Passage, Query, SkipReport
from uae.data.splits import query_documents, split_by_document
from uae.errors import DownloadError

FIXTURES = Path(__file__).parent / "fixtures"
from conftest import SHARED_DATA as SHARED

# ----------------------------------------------------------------------------- chunking


def test_chunks_are_verbatim_word_windows_with_overlap():
    text = "w0 w1  w2\nw3 w4 w5 w6 w7 w8 w9"
    chunks = chunk_text(text, max_tokens=4, overlap=1)
    assert [c.text.split() for c in chunks] == [["w0", "w1", "w2", "w3"], ["w3", "w4", "w5", "w6"], ["w6", "w7", "w8", "w9"]]
    assert all(text[c.start_char : c.end_char] == c.text for c in chunks)
    assert chunks[0].text == "w0 w1  w2\nw3"  # original spacing kept


def test_chunking_stops_when_the_last_word_is_covered():
    assert len(chunk_text("a b c d e f g", max_tokens=4, overlap=1)) == 2
    assert chunk_text("  short text ", 128, 32) == [Chunk("short text", 2, 12)]
    assert chunk_text(" \n ", 4, 1) == []


@pytest.mark.parametrize("max_tokens, overlap", [(0, 0), (4, 4), (4, -1)])
def test_chunking_rejects_bad_sizes(max_tokens, overlap):
    with pytest.raises(ValueError):
        chunk_text("a b c", max_tokens, overlap)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab", min_size=1, max_size=3), min_size=1, max_size=60), st.integers(1, 9), st.data())
def test_chunking_covers_every_word_and_shares_exactly_the_overlap(words, max_tokens, data):
    overlap = data.draw(st.integers(0, max_tokens - 1))
    chunks = chunk_text(" ".join(words), max_tokens, overlap)
    pieces = [c.text.split() for c in chunks]
    assert all(len(p) <= max_tokens for p in pieces)
    rebuilt = pieces[0] + [w for p in pieces[1:] for w in p[overlap:]]
    assert rebuilt == words
    assert all(len(p) == max_tokens for p in pieces[:-1])


def test_spans_map_to_the_chunks_they_overlap():
    text = "one two three four five six seven"
    chunks = chunk_text(text, max_tokens=3, overlap=1)  # [one two three] [three four five] [five six seven]
    three = text.index("three")
    assert spans_to_chunks([(three, three + 5)], chunks) == [0, 1]  # in the overlap
    assert spans_to_chunks([(text.index("six"), len(text))], chunks) == [2]
    assert spans_to_chunks([(0, 3), (text.index("seven"), len(text))], chunks) == [0, 2]
    assert spans_to_chunks([(3, 4)], chunks) == [0]  # whitespace inside a chunk
    assert spans_to_chunks([(text.index("four"),) * 2], chunks) == [1]  # empty span: a position
    with pytest.raises(ValueError):
        spans_to_chunks([(5, 2)], chunks)


# ----------------------------------------------------------------------------- splits


def _toy_dataset(n_docs: int = 20, per_doc: int = 3, scoped: bool = True) -> Dataset:
    passages, queries, qrels = [], {}, {}
    for d in range(n_docs):
        passages.append(Passage(f"p{d}", f"text {d}", doc_id=f"doc{d}"))
        for k in range(per_doc):
            qid = f"q{d}-{k}"
            queries[qid] = Query(qid, "what?", ("a",), f"doc{d}" if scoped else None)
            qrels[qid] = {f"p{d}": 1}
    return Dataset("toy", Corpus(passages), queries, {"all": qrels})


def _docs_per_split(dataset: Dataset) -> dict[str, set[str]]:
    documents = query_documents(dataset)
    return {split: {documents[qid] for qid in qrels} for split, qrels in dataset.qrels.items()}


def test_split_by_document_keeps_each_document_in_one_split():
    split = split_by_document(_toy_dataset())
    docs = _docs_per_split(split)
    assert {name: len(d) for name, d in docs.items()} == {"train": 12, "dev": 2, "test": 6}
    assert not (docs["train"] & docs["dev"]) and not (docs["train"] & docs["test"]) and not (docs["dev"] & docs["test"])
    assert sorted(q for qrels in split.qrels.values() for q in qrels) == sorted(_toy_dataset().queries)


def test_split_by_document_is_deterministic_and_ignores_query_order():
    dataset = _toy_dataset()
    reordered = Dataset("toy", dataset.corpus, dataset.queries, {"all": dict(reversed(list(dataset.qrels["all"].items())))})
    first, again, other = split_by_document(dataset), split_by_document(reordered), split_by_document(dataset, seed=14)
    assert first.qrels == again.qrels
    assert _docs_per_split(first) != _docs_per_split(other)


def test_split_by_document_uses_gold_passage_documents_for_unscoped_queries():
    split = split_by_document(_toy_dataset(n_docs=3, per_doc=2, scoped=False))
    docs = _docs_per_split(split)
    assert all(len(d) == 1 for d in docs.values())  # three documents, one per split
    assert set().union(*docs.values()) == {"doc0", "doc1", "doc2"}


@pytest.mark.parametrize("fractions", [{"train": 0.5, "test": 0.4}, {"train": 1.2, "test": -0.2}, {}])
def test_split_by_document_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError):
        split_by_document(_toy_dataset(), fractions)


# ----------------------------------------------------------------------------- QASPER


@pytest.fixture(scope="module")
def qasper_loaded():
    return qasper.load(FIXTURES / "qasper")


def test_qasper_passages_are_paragraphs_titled_by_section(qasper_loaded):
    corpus = qasper_loaded.dataset.corpus
    assert corpus["2001.00001#0"] == Passage("2001.00001#0", "We study tiny parsers for short sentences.", "Abstract", "2001.00001")
    assert corpus["2001.00001#3"].title == "Method"
    assert "2001.00001#2" not in corpus  # the empty paragraph
    assert qasper_loaded.skipped.counts["passage: empty paragraph"] == 1
    assert {p.doc_id for p in corpus} == {"2001.00001", "2002.00002"}


def test_qasper_answers_of_every_type_become_text(qasper_loaded):
    queries = qasper_loaded.dataset.queries
    assert queries["q-extractive"].answers == ("500 sentences, Penn Treebank", "five hundred sentences")
    assert queries["q-yesno"].answers == ("yes", "no")
    assert queries["q-whitespace"].answers == ("a biaffine scorer",)  # the unanswerable annotation is dropped
    assert queries["hf-q1"].answers == ("0.1",)


def test_qasper_evidence_is_the_union_and_figures_are_counted(qasper_loaded):
    qrels = qasper_loaded.dataset.qrels
    assert qrels["dev"]["q-extractive"] == {"2001.00001#3": 1}  # the figure caption was dropped, the paragraph kept
    assert qrels["dev"]["q-whitespace"] == {"2001.00001#4": 1}  # matched despite different whitespace
    assert qrels["dev"]["q-abstract"] == {"2001.00001#0": 1}
    counts = qasper_loaded.skipped.counts
    assert counts["evidence item: figure/table caption (dropped)"] == 2
    assert counts["evidence item: not a paragraph of the paper (dropped)"] == 1  # a section heading
    assert counts["question: only figure/table evidence"] == 1
    assert counts["question: no text evidence"] == 1
    assert counts["question: unanswerable"] == 2
    assert counts["annotation: unanswerable (dropped)"] == 4


def test_qasper_reads_both_layouts_with_splits_from_file_names_and_scopes_to_the_paper(qasper_loaded):
    dataset = qasper_loaded.dataset
    assert set(dataset.qrels) == {"dev", "train"}
    assert list(dataset.qrels["train"]) == ["hf-q1"]
    assert {q.id: q.doc_id for q in dataset.queries.values()} == {
        "q-extractive": "2001.00001", "q-yesno": "2001.00001", "q-whitespace": "2001.00001", "q-abstract": "2001.00001",
        "hf-q1": "2002.00002"}
    unscoped = qasper.load(FIXTURES / "qasper", scoped=False, include_abstract=False, split="test")
    assert all(q.doc_id is None for q in unscoped.dataset.queries.values())
    assert set(unscoped.dataset.qrels) == {"test"}
    assert "2001.00001#0" not in unscoped.dataset.corpus and "2001.00001#1" in unscoped.dataset.corpus  # ids stay stable
    assert "q-abstract" not in unscoped.dataset.queries  # its only text evidence was the abstract


def test_qasper_renames_repeated_question_ids_and_refuses_a_paper_twice(tmp_path):
    data = json.loads((FIXTURES / "qasper" / "qasper_dev_tiny.json").read_text())
    qas = data["2001.00001"]["qas"]
    qas[1]["question_id"] = qas[0]["question_id"]
    (tmp_path / "qasper-test-x.json").write_text(json.dumps(data))
    loaded = qasper.load(tmp_path / "qasper-test-x.json")
    assert loaded.dataset.queries["q-extractive~2"].answers == ("yes", "no")
    assert loaded.skipped.counts["question: duplicate question_id (kept, renamed with ~N)"] == 1
    with pytest.raises(DataError, match="paper 2001.00001: expected each paper once"):
        qasper.load([tmp_path / "qasper-test-x.json", FIXTURES / "qasper" / "qasper_dev_tiny.json"])


def test_qasper_malformed_paper_names_file_and_record(tmp_path):
    (tmp_path / "qasper-bad.json").write_text(json.dumps({"1": {"title": "x", "abstract": "y", "qas": []}}))
    with pytest.raises(DataError, match=r"qasper-bad.json: paper 1: expected field 'full_text'"):
        qasper.load(tmp_path / "qasper-bad.json")


# ----------------------------------------------------------------------------- SQuAD


def test_squad_reads_a_list_of_files_with_paragraph_gold_and_article_documents():
    loaded = squad.load([FIXTURES / "squad" / "tiny-dev-v1.1-part-a.json", FIXTURES / "squad" / "tiny-dev-v1.1-part-b.json"])
    dataset = loaded.dataset
    assert dataset.corpus.ids == ["Alpha_Town#0", "Alpha_Town#1", "Beta_River#0"]
    assert dataset.corpus["Alpha_Town#1"].title == "Alpha Town" and dataset.corpus["Alpha_Town#1"].doc_id == "Alpha_Town"
    assert dataset.queries["s1"].answers == ("1742", "in 1742")  # the three crowd answers, deduplicated
    assert dataset.qrels == {"dev": {"s1": {"Alpha_Town#0": 1}, "s2": {"Alpha_Town#1": 1}, "s3": {"Beta_River#0": 1}}}
    assert all(q.doc_id is None for q in dataset.queries.values())  # corpus-wide by default
    assert squad.load(FIXTURES / "squad", version="v1.1", scoped=True).dataset.queries["s3"].doc_id == "Beta_River"


def test_squad_v2_counts_and_skips_unanswerable():
    loaded = squad.load(FIXTURES / "squad", version="v2.0")
    assert list(loaded.dataset.queries) == ["s4"]
    assert loaded.skipped.counts == {"question: unanswerable (v2.0 is_impossible)": 1}


def test_squad_refuses_a_question_id_twice(tmp_path):
    shutil.copy(FIXTURES / "squad" / "tiny-dev-v1.1-part-b.json", tmp_path / "a-dev.json")
    data = json.loads((FIXTURES / "squad" / "tiny-dev-v1.1-part-b.json").read_text())
    data["data"][0]["title"] = "Other"
    (tmp_path / "b-dev.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"b-dev.json: article 'Other', paragraph 0, question s3: expected a unique query id"):
        squad.load(tmp_path)


# ----------------------------------------------------------------------------- Natural Questions / QED


def test_qed_reads_both_schemas_and_shares_paragraphs():
    loaded = nq_qed.load(FIXTURES / "nq_qed")
    dataset = loaded.dataset
    assert dataset.corpus.ids == ["nq101", "nq103", "nq201"]  # 101 and 102 share a paragraph
    assert dataset.corpus["nq101"].title == "Nobel Prize in Physics" == dataset.corpus["nq101"].doc_id
    assert dataset.queries["101"].answers == ("Wilhelm Conrad Röntgen , of Germany", "Wilhelm Conrad Röntgen")
    assert dataset.queries["103"].answers == ("Ann, Bob, Cid",)  # a list answer, spans joined
    assert dataset.queries["201"].answers == ("12 metres",)  # the initial-release schema
    assert dataset.qrels == {"dev": {"101": {"nq101": 1}, "102": {"nq101": 1}, "103": {"nq103": 1}}, "train": {"201": {"nq201": 1}}}
    assert loaded.skipped.counts == {"question: no short answer": 1}


def test_qed_chunks_long_paragraphs_and_maps_answer_spans():
    dataset = nq_qed.load(FIXTURES / "nq_qed", chunk_tokens=6, chunk_overlap=1).dataset
    lake = [p for p in dataset.corpus if p.doc_id == "Epsilon Lake"]
    assert len(lake) == 4 and all(len(p.text.split()) <= 6 for p in lake)
    assert dataset.qrels["train"]["201"] == {"nq201#2": 1}
    assert dataset.corpus["nq201#2"].text == "is 12 metres deep and freezes"
    assert dataset.qrels["dev"]["101"] == {"nq101#2": 1, "nq101#3": 1}  # a span crossing a chunk edge


# ----------------------------------------------------------------------------- PubMedQA


def test_pubmedqa_contexts_are_passages_and_the_long_answer_is_the_answer():
    loaded = pubmedqa.load(FIXTURES / "pubmedqa")
    dataset = loaded.dataset
    assert dataset.queries["1001"].answers == ("Coffee improved recall in healthy adults.",)
    assert dataset.qrels["train"]["1001"] == {"1001#0": 1, "1001#1": 1}
    assert dataset.qrels["test"] == {"1002": {"1002#0": 1, "1002#2": 1}}  # from test_ground_truth.json
    assert set(dataset.qrels["train"]) == {"1001", "1003"}
    assert loaded.skipped.counts == {"passage: empty context": 1}
    assert {p.doc_id for p in dataset.corpus} == {"1001", "1002", "1003"}


def test_pubmedqa_answer_choice_and_missing_test_file(tmp_path):
    both = pubmedqa.load(FIXTURES / "pubmedqa", answer="both", scoped=True).dataset
    assert both.queries["1002"].answers == ("Tea did not cause decay.", "no")
    assert both.queries["1002"].doc_id == "1002"
    assert pubmedqa.load(FIXTURES / "pubmedqa", answer="decision").dataset.queries["1003"].answers == ("maybe",)
    shutil.copy(FIXTURES / "pubmedqa" / "ori_pqal.json", tmp_path / "ori_pqal.json")
    assert set(pubmedqa.load(tmp_path).dataset.qrels) == {"all"}
    with pytest.raises(ValueError, match="answer must be one of"):
        pubmedqa.load(FIXTURES / "pubmedqa", answer="short")


# ----------------------------------------------------------------------------- QMSum


def test_qmsum_chunks_meetings_and_maps_turn_spans_to_chunks():
    loaded = qmsum.load(FIXTURES / "qmsum", chunk_tokens=8, chunk_overlap=2)
    dataset = loaded.dataset
    assert {p.doc_id for p in dataset.corpus} == {"Tr001", "dev-001"}  # meeting_id, else <split>-<line>
    assert dataset.corpus["dev-001#0"].text == "Alice: welcome everyone to the budget meeting\nBob:"
    # turn 1 ("Bob: the budget is ten thousand euros"): chunk 0 only holds the label "Bob:"
    assert dataset.qrels["dev"]["dev-001-s0"] == {"dev-001#1": 1, "dev-001#2": 1}
    assert dataset.qrels["dev"]["dev-001-s1"] == {"dev-001#3": 1, "dev-001#4": 1, "dev-001#5": 1}
    assert dataset.queries["dev-001-s1"].answers == ("They cost 200 euros; fifty can be bought.",)
    assert dataset.queries["dev-001-s1"].doc_id == "dev-001"
    assert set(dataset.qrels) == {"train", "dev"}
    assert loaded.skipped.counts == {"question: general query (whole meeting, no evidence span)": 1}
    assert qmsum.load(FIXTURES / "qmsum", scoped=False).dataset.queries["Tr001-s0"].doc_id is None


def test_qmsum_span_outside_the_transcript_is_an_error(tmp_path):
    record = json.loads((FIXTURES / "qmsum" / "train.jsonl").read_text())
    record["specific_query_list"][0]["relevant_text_span"] = [["1", "7"]]
    (tmp_path / "test.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=r"test.jsonl: line 1 \(meeting Tr001\), specific query 0: expected turn span within 0..1"):
        qmsum.load(tmp_path)


# ----------------------------------------------------------------------------- NewsQA


def test_newsqa_consensus_spans_give_answers_and_gold_chunks():
    loaded = newsqa.load(FIXTURES / "newsqa", chunk_tokens=8, chunk_overlap=2)
    dataset = loaded.dataset
    assert dataset.queries["aaa111-q0"].answers == ("the coast of Zeta",)
    assert dataset.qrels["train"]["aaa111-q0"] == {"aaa111#0": 1, "aaa111#1": 1}  # the span crosses a chunk edge
    assert dataset.qrels["train"]["aaa111-q1"] == {"aaa111#3": 1}
    assert dataset.qrels["test"] == {"bbb222-q0": {"bbb222#1": 1}}  # split from the story's type
    assert dataset.queries["bbb222-q0"].doc_id == "bbb222"
    assert loaded.skipped.counts == {"question: bad question (consensus)": 1, "question: no answer in story (consensus)": 1}


def test_newsqa_consensus_outside_the_story_is_an_error(tmp_path):
    data = json.loads((FIXTURES / "newsqa" / "combined-newsqa-data-v1.json").read_text())
    data["data"][1]["questions"][0]["consensus"] = {"s": 10, "e": 999}
    (tmp_path / "combined-newsqa-data-v1.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"story ./cnn/stories/bbb222.story, question 0: expected consensus 0 <= s < e"):
        newsqa.load(tmp_path)


@pytest.mark.parametrize("name, content, expected", [
    ("qed-dev.jsonl", b'\n{not json\n', r"qed-dev.jsonl:2: expected one JSON object per line"),
    ("qed-dev.jsonl.gz", b"not gzip", r"qed-dev.jsonl.gz:1: expected a readable file"),
    ("qed-dev.jsonl", b'{"example_id": 1, "question_text": "q"}\n', r"qed-dev.jsonl: line 1: expected field 'answer_text'"),
])
def test_malformed_lines_name_the_file_and_line(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=expected):
        nq_qed.load(tmp_path / name)


# ----------------------------------------------------------------------------- BEIR folder


def test_beir_folder_merges_an_answers_file():
    dataset = beir_folder.load(FIXTURES / "beir_tiny", answers=FIXTURES / "beir_tiny_answers.jsonl").dataset
    assert dataset.queries["1"].answers == ("300 people", "300")
    assert dataset.queries["2"].answers == ("2000 metres", "2,000 metres")  # kept its own, added the file's
    assert dataset.queries["3"].answers == ()  # kept; stages count it as unusable
    assert dataset.usable_queries("test")[1].counts == {"no gold answer": 1}


def test_beir_answers_for_an_unknown_query_name_the_line(tmp_path):
    (tmp_path / "answers.jsonl").write_text('{"_id": "1", "answers": ["x"]}\n{"_id": "9", "answers": ["y"]}\n')
    with pytest.raises(DataError, match=r"answers.jsonl:2: expected '_id' of a query"):
        beir_folder.load(FIXTURES / "beir_tiny", answers=tmp_path / "answers.jsonl")


# ----------------------------------------------------------------------------- registry, prepare, CLI


def test_registry_lists_official_sources_for_every_dataset():
    assert set(DATASETS) == {"qasper", "squad-v1.1", "squad-v2.0", "nq-qed", "pubmedqa", "qmsum", "newsqa", "beir"}
    for info in DATASETS.values():
        assert info.description and (info.files or info.manual)
        assert all(f.url.startswith("https://") and (f.sha256 is None or len(f.sha256) == 64) for f in info.files)
    assert DATASETS["pubmedqa"].files[0].sha256 == "8b3276be8942ebbd77f3ddcda12c1749bf0e490045a736fd8438ee40cf37a41d"
    assert loader_options("squad-v2.0") == {"version": "v2.0", "scoped": False, "split": None}


def test_load_named_splits_by_document_only_when_the_source_lacks_train_or_test():
    skipped = SkipReport()
    squad_split = load_named("squad-v1.1", FIXTURES / "squad", skipped=skipped)
    assert set(squad_split.qrels) == {"train", "dev", "test"}  # the source had only dev
    assert skipped.counts == {}
    pubmed = load_named("pubmedqa", FIXTURES / "pubmedqa", skipped=skipped)
    assert set(pubmed.qrels) == {"train", "test"} and skipped.counts == {"passage: empty context": 1}
    assert set(load_named("pubmedqa", FIXTURES / "pubmedqa", resplit=True).qrels) == {"train", "dev", "test"}
    assert load("squad-v1.1", FIXTURES / "squad").dataset.name == "squad-v1.1"


def test_load_named_refuses_unknown_names_and_options():
    with pytest.raises(ValueError, match="unknown dataset 'mystery'"):
        load_named("mystery", FIXTURES)
    with pytest.raises(ValueError, match="qmsum does not take option"):
        load_named("qmsum", FIXTURES / "qmsum", answer="long")


def test_prepare_writes_a_beir_folder_every_stage_reads(tmp_path):
    manifest = prepare("qmsum", FIXTURES / "qmsum", tmp_path / "out", **parse_options(["chunk_tokens=8", "chunk-overlap=2"]))
    dataset = read_dataset(tmp_path / "out")
    assert set(dataset.qrels) == {"train", "dev", "test"}  # no test split in the source: split by meeting
    assert dataset.queries["dev-001-s1"].answers == ("They cost 200 euros; fifty can be bought.",)
    assert len(dataset.corpus) == manifest["stats"]["passages"] == 9
    stored = json.loads((tmp_path / "out" / "prepared.json").read_text())
    assert stored["skipped"] == {"question: general query (whole meeting, no evidence span)": 1}
    assert stored["options"] == {"chunk_tokens": 8, "chunk_overlap": 2}


def test_parse_options_types_values():
    assert parse_options(["a=true", "b=none", "c=3", "d=0.5", "e=x=y"]) == {"a": True, "b": None, "c": 3, "d": 0.5, "e": "x=y"}
    with pytest.raises(ValueError):
        parse_options(["novalue"])


def test_cli_data_list_and_prepare(tmp_path):
    from typer.testing import CliRunner

    from uae.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["data", "list"], terminal_width=200)
    assert listed.exit_code == 0 and "qmsum" in listed.output and "squad-v2.0" in listed.output
    out = tmp_path / "beir"
    result = runner.invoke(app, ["data", "prepare", "beir", "--from", str(FIXTURES / "beir_tiny"), "--out", str(out),
                                 "--answers", str(FIXTURES / "beir_tiny_answers.jsonl"), "--keep-splits"])
    assert result.exit_code == 0, result.output
    assert read_dataset(out).queries["1"].answers == ("300 people", "300")
    bad = runner.invoke(app, ["data", "prepare", "newsqa", "--from", str(tmp_path / "missing.json"), "--out", str(out)])
    assert bad.exit_code == 2 and "missing.json" in bad.output


# ----------------------------------------------------------------------------- download


@pytest.fixture
def fake_registry(monkeypatch):
    """A registry entry whose files are served from memory instead of the network."""
    payload = b'{"hello": "world"}\n'
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("inner/data.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    served = {"https://example.org/a.json": payload, "https://example.org/b.tgz": archive.getvalue()}
    entry = DatasetInfo("fake", "fake", "beir_folder", (
        RemoteFile("https://example.org/a.json", hashlib.sha256(payload).hexdigest()),
        RemoteFile("https://example.org/b.tgz")), known_copies={"copy.json": hashlib.sha256(payload).hexdigest()})
    monkeypatch.setitem(DATASETS, "fake", entry)
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout=None: io.BytesIO(served[url]))
    return entry, payload


def test_download_verifies_checksums_and_extracts_archives(tmp_path, fake_registry):
    fetched = download("fake", tmp_path)
    assert [(f.path.name, f.check) for f in fetched] == [("a.json", "verified"), ("b.tgz", "no checksum known"), (tmp_path.name, "extracted")]
    assert (tmp_path / "inner" / "data.json").read_bytes() == fake_registry[1]
    assert not list(tmp_path.glob("*.part"))


def test_download_rejects_a_wrong_checksum_and_leaves_no_file(tmp_path, monkeypatch, fake_registry):
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout=None: io.BytesIO(b"tampered"))
    with pytest.raises(DownloadError, match="https://example.org/a.json: sha256 .* does not match"):
        download("fake", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_from_a_local_copy_verifies_known_files(tmp_path, fake_registry):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "copy.json").write_bytes(fake_registry[1])
    (tmp_path / "src" / "notes.txt").write_text("x")
    fetched = download("fake", tmp_path / "out", tmp_path / "src")
    assert sorted((f.path.name, f.check) for f in fetched) == [("copy.json", "verified"), ("notes.txt", "no checksum known")]
    assert sha256_of(tmp_path / "out" / "copy.json") == hashlib.sha256(fake_registry[1]).hexdigest()
    with pytest.raises(DownloadError, match="does not match"):  # the fixture is not the official ori_pqal.json
        download("pubmedqa", tmp_path / "pm", FIXTURES / "pubmedqa")
    with pytest.raises(DownloadError, match="cannot be downloaded automatically"):
        download("newsqa", tmp_path / "news")


# ----------------------------------------------------------------------------- the shared real data

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data folder {SHARED} is absent")


def _shared(folder: str) -> Path:
    path = SHARED / folder
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


def _gold_in_scope(dataset: Dataset) -> bool:
    return all(
        dataset.corpus[pid].doc_id == dataset.queries[qid].doc_id
        for qrels in dataset.qrels.values() for qid, judged in qrels.items() for pid in judged
        if dataset.queries[qid].doc_id is not None
    )


@needs_shared
def test_shared_squad_counts():
    v11 = load("squad-v1.1", _shared("squad"))
    stats = dataset_stats(v11.dataset)
    assert (stats["passages"], stats["documents"], stats["queries"]) == (2067, 48, {"dev": 10570})
    wordless = "answer: no letter or digit (the question keeps its other answers)"  # e.g. "." among the crowd answers
    assert v11.skipped.counts == {wordless: 3}
    assert v11.dataset.queries["5730b7ce069b5314008322c4"].answers == ("interventionism",)
    v20 = load("squad-v2.0", _shared("squad"))
    assert len(v20.dataset.queries) == 2910
    assert v20.skipped.counts == {"question: unanswerable (v2.0 is_impossible)": 3168, wordless: 3}
    assert len(v20.dataset.corpus) == 646


@needs_shared
def test_shared_qed_counts():
    loaded = load("nq-qed", _shared("nq_qed"))
    assert {k: len(v) for k, v in loaded.dataset.qrels.items()} == {"dev": 1355, "train": 7147}
    assert loaded.skipped.counts == {"question: no short answer": 20}
    assert 7000 < len(loaded.dataset.corpus) < 8502  # questions share paragraphs


@needs_shared
def test_shared_pubmedqa_counts():
    loaded = load("pubmedqa", _shared("pubmedqa"))
    stats = dataset_stats(loaded.dataset)
    assert (stats["passages"], stats["documents"], stats["queries"]) == (3358, 1000, {"train": 500, "test": 500})
    assert all(len(q.answers[0].split()) > 3 for q in loaded.dataset.queries.values())  # long answers, not yes/no


@needs_shared
def test_shared_qmsum_counts():
    loaded = load("qmsum", _shared("qmsum"))
    dataset = loaded.dataset
    specific = sum(len(q) for q in dataset.qrels.values())
    assert {k: len(v) for k, v in dataset.qrels.items()} == {"train": 1095, "dev": 237, "test": 244}
    assert specific + loaded.skipped.counts["question: general query (whole meeting, no evidence span)"] == 1810
    assert dataset_stats(dataset)["documents"] == 232
    assert all(len(p.text.split()) <= 128 for p in dataset.corpus)
    assert _gold_in_scope(dataset)


@needs_shared
def test_shared_qasper_samples():
    folder = _shared("qasper")
    hf = load("qasper", folder / "qasper-hf-train-first10papers.jsonl")
    questions = len(hf.dataset.queries) + sum(n for r, n in hf.skipped.counts.items() if r.startswith("question:"))
    assert questions == 51 and dataset_stats(hf.dataset)["documents"] == 10
    assert hf.skipped.counts["evidence item: figure/table caption (dropped)"] > 0
    assert _gold_in_scope(hf.dataset)
    sample = load("qasper", folder / "qasper_sample_small.json")
    assert len(sample.dataset.queries) == 3  # 4 questions, one unanswerable
