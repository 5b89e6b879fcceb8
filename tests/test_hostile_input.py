"""Hostile and careless input (issue 16): one clear line, exit code 2, nothing lost, nothing reused wrongly."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from uae.cli import app
from uae.config import RunConfig
from uae.data import DataError, read_dataset
from uae.data.beir import read_corpus
from uae.data.schema import Corpus, Passage
from uae.data.tables import write_pools
from uae.io import atomic_write_text
from uae.retrieval.index import DenseIndex

HEADER = "query-id\tcorpus-id\tscore\n"


def _dataset(folder: Path, qrels: str = HEADER + "q1\tp1\t1\nq2\tp2\t1\n", corpus: list | None = None) -> Path:
    """A tiny BEIR folder with answers; ``qrels`` is the text of ``qrels/train.tsv``."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    corpus = corpus or [{"_id": "p1", "text": "the river runs by the mill"}, {"_id": "p2", "text": "the castle stands on the hill"},
                        {"_id": "p3", "text": "a violin plays in the garden"}]
    (folder / "corpus.jsonl").write_text("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in corpus))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "where is the mill?", "answers": ["by the river"]}) + "\n"
                                          + json.dumps({"_id": "q2", "text": "where is the castle?", "answers": ["on the hill"]}) + "\n")
    (folder / "qrels" / "train.tsv").write_text(qrels)
    return folder


def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(result, *phrases: str) -> str:
    """The CLI failed with exit code 2 and one ``error:`` line (no traceback) holding every phrase."""
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output and (result.exception is None or isinstance(result.exception, SystemExit)), output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, output
    for phrase in phrases:
        assert phrase in output, output
    return output


def _unit(rows: int, dimension: int = 8, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _small_index(count: int = 4) -> DenseIndex:
    corpus = Corpus(Passage(f"p{i}", f"text {i}", doc_id="d1") for i in range(count))
    return DenseIndex.build(_unit(count), corpus, model="m", fingerprint="f")


# -- 1. an index never deletes what is not its own; orphans of a killed save are cleaned and reported ------


def test_index_refuses_a_non_empty_folder_that_is_not_an_index(tmp_path, tiny_encoder_dir):
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in {"meta.json": '{"my": "notes"}', "passages.parquet": "mine", "index.faiss": "mine too", "a.txt": "x"}.items():
        (out / name).write_text(text)
    result = _cli("index", tiny_encoder_dir, _dataset(tmp_path / "data"), "--out", out)
    _one_line_error(result, str(out), "not a uae index")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"meta.json": '{"my": "notes"}', "passages.parquet": "mine",
                                                             "index.faiss": "mine too", "a.txt": "x"}


def test_save_refuses_a_foreign_folder_but_replaces_its_own_index(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "index.faiss").write_text("user data")
    with pytest.raises(DataError, match="not a uae index"):
        _small_index().save(foreign)
    assert (foreign / "index.faiss").read_text() == "user data"
    own = tmp_path / "own"
    _small_index(3).save(own)
    _small_index(5).save(own)
    assert len(DenseIndex.load(own)) == 5
    (tmp_path / "empty").mkdir()
    _small_index().save(tmp_path / "empty")  # an empty folder is fine


def test_orphans_of_a_killed_save_are_removed_and_reported(tmp_path, caplog):
    folder = _small_index().save(tmp_path / "index")
    orphans = ["index-000007.faiss.tmp", "passages-000007.parquet", "meta.json.tmp"]
    for name in orphans:
        (folder / name).write_text("half written")
    with caplog.at_level(logging.WARNING, logger="uae.retrieval.index"):
        _small_index(2).save(folder)
    assert not [name for name in orphans if (folder / name).exists()]
    assert "interrupted" in caplog.text and "index-000007.faiss.tmp" in caplog.text
    assert len(DenseIndex.load(folder)) == 2


# -- 2. qrels: duplicates and grades -----------------------------------------------------------------


@pytest.mark.parametrize(("rows", "line", "phrase"), [
    ("q1\tp1\t1\nq2\tp2\t1\nq1\tp1\t0\n", 4, "line 2"),
    ("q1\tp1\t0.9\n", 2, "integer"),
    ("q1\tp1\tinf\n", 2, "integer"),
    ("q1\tp1\t1e400\n", 2, "integer"),
    ("q1\tp1\tnan\n", 2, "integer"),
    ("q1\tp1\t-1\n", 2, ">= 0"),
])
def test_qrels_duplicates_and_bad_grades_are_errors(tmp_path, rows, line, phrase):
    folder = _dataset(tmp_path, HEADER + rows)
    with pytest.raises(DataError) as caught:
        read_dataset(folder)
    assert caught.value.path.endswith("train.tsv") and caught.value.line == line
    assert phrase in str(caught.value)


def test_qrels_integral_floats_and_identical_duplicates_are_kept(tmp_path):
    folder = _dataset(tmp_path, HEADER + "q1\tp1\t2.0\nq1\tp1\t2\nq2\tp2\t1\n")
    assert read_dataset(folder).qrels["train"] == {"q1": {"p1": 2}, "q2": {"p2": 1}}


def test_qrels_overflowing_grade_is_one_line_on_the_cli(tmp_path):
    folder = _dataset(tmp_path, HEADER + "q1\tp1\t1e400\n")
    _one_line_error(_cli("mine", folder, "--out", tmp_path / "pools.parquet"), "train.tsv:2")


# -- 3. prepare never writes over its source --------------------------------------------------------------


def test_prepare_refuses_out_equal_to_from(tmp_path):
    folder = _dataset(tmp_path / "d")
    before = (folder / "qrels" / "train.tsv").read_text()
    for out in (folder, tmp_path / "d" / ".." / "d"):
        _one_line_error(_cli("data", "prepare", "beir", "--from", folder, "--out", out), "--out")
    assert (folder / "qrels" / "train.tsv").read_text() == before
    assert sorted(p.name for p in (folder / "qrels").iterdir()) == ["train.tsv"]


# -- 4. numeric options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["mine", "DATA", "--pool-size", "0"], ["mine", "DATA", "--pool-size", "-3"], ["mine", "DATA", "--depth", "0"],
    ["label", "DATA", "--part-queries", "0"], ["label", "DATA", "--batch-tokens", "-1"], ["label", "DATA", "--concurrency", "0"],
    ["train", "DATA", "--steps", "0"], ["train", "DATA", "--batch-size", "-2"], ["train", "DATA", "--tau-t", "0"],
    ["train", "DATA", "--tau-t", "nan"], ["train", "DATA", "--train-pool-size", "1"],
    ["search", "INDEX", "q", "-k", "0"], ["serve", "m", "--index", "INDEX", "--port", "70000"],
    ["serve", "m", "--index", "INDEX", "--max-batch", "0"], ["serve", "m", "--index", "INDEX", "--max-wait-ms", "-1"],
    ["eval", "DATA", "--depth", "0"], ["eval", "DATA", "--generate-k", "0"], ["qrels", "--from-utilities", "L", "--out", "o.tsv",
                                                                                "--grades", "0"],
])
def test_numeric_options_are_validated_before_any_work(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)  # default outputs (pools.parquet, labels/) would land here
    data = _dataset(tmp_path / "data")
    args = [str(data) if a == "DATA" else str(tmp_path / "nothing") if a == "INDEX" else a for a in args]
    result = _cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    option = next(a for a in reversed(args) if a.startswith("-") and not a.lstrip("-").replace(".", "").isdigit())
    assert option in result.output or option.lstrip("-").replace("-", "_") in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written


@pytest.mark.parametrize("section", [{"mining": {"pool_size": 0}}, {"mining": {"depth": -1}}, {"labeling": {"part_queries": 0}},
                                     {"training": {"steps": 0}}, {"training": {"tau_s": float("nan")}},
                                     {"eval": {"oracle_depth": 0}}, {"targets": {"tau_t": float("inf")}}])
def test_numeric_config_fields_are_validated(section):
    with pytest.raises(ValueError):
        RunConfig(data="d", **section)


# -- 5. zero usable queries -------------------------------------------------------------------------------


def test_mine_with_header_only_qrels_says_why(tmp_path):
    folder = _dataset(tmp_path, HEADER)
    out = tmp_path / "pools.parquet"
    _one_line_error(_cli("mine", folder, "--out", out), "no usable queries", "'train'")
    assert not out.exists()


def test_mine_with_no_answered_queries_says_why(tmp_path):
    folder = _dataset(tmp_path)
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "where?"}) + "\n"
                                          + json.dumps({"_id": "q2", "text": "what?"}) + "\n")
    _one_line_error(_cli("mine", folder, "--out", tmp_path / "p.parquet"), "no usable queries", "no gold answer")


def test_train_with_zero_pools_says_why(tmp_path):
    folder = _dataset(tmp_path / "d")
    pools = write_pools({}, tmp_path / "pools.parquet")
    _one_line_error(_cli("train", folder, "--pools", pools, "--loss", "infonce_gold", "--out", tmp_path / "m"),
                    "pools.parquet", "no pools")
    assert not (tmp_path / "m").exists()


# -- tracebacks where one line is due ---------------------------------------------------------------------


def test_lone_surrogate_in_a_passage_is_named_by_file_and_line(tmp_path):
    corpus = [{"_id": "p1", "text": "fine"}, '{"_id": "p2", "text": "bad \\ud800 text"}\n']
    folder = _dataset(tmp_path / "src", corpus=corpus, qrels=HEADER + "q1\tp1\t1\n")
    with pytest.raises(DataError) as caught:
        read_corpus(folder / "corpus.jsonl")
    assert caught.value.line == 2 and "surrogate" in str(caught.value) and "'text'" in str(caught.value)
    out = tmp_path / "out"
    _one_line_error(_cli("data", "prepare", "beir", "--from", folder, "--out", out), "corpus.jsonl:2")
    assert not list(out.rglob("*.tmp")) if out.exists() else True
    _one_line_error(_cli("mine", folder, "--out", tmp_path / "p.parquet"), "corpus.jsonl:2")


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path):
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(tmp_path / "x.txt", "bad \ud800")
    assert list(tmp_path.iterdir()) == []


def test_unknown_split_is_one_line(tmp_path):
    _one_line_error(_cli("mine", _dataset(tmp_path), "--split", "nosuch", "--out", tmp_path / "p.parquet"), "'nosuch'", "train")


@pytest.mark.parametrize("spec", ["hf:/nonexistent", "hf:./no/such/model", "hf:no-such-org/no-such-model-xyz"])
def test_missing_teacher_model_is_one_line(tmp_path, spec):
    from uae.teachers import load_teacher
    from uae.errors import USER_ERRORS

    with pytest.raises(USER_ERRORS) as caught:
        load_teacher(spec)
    message = str(caught.value)
    assert "\n" not in message and spec.removeprefix("hf:") in message


@pytest.mark.parametrize("model", ["/nonexistent/model", "./no/such/encoder", "no-such-org/no-such-encoder"])
def test_missing_encoder_path_is_one_line(tmp_path, model):
    result = _cli("mine", _dataset(tmp_path), "--model", model, "--out", tmp_path / "p.parquet")
    _one_line_error(result, model)
    assert len(result.output.splitlines()) <= 3


def test_truncated_faiss_file_is_a_data_error(tmp_path):
    folder = _small_index().save(tmp_path / "index")
    meta = json.loads((folder / "meta.json").read_text())
    faiss_file = folder / meta["index_file"]
    faiss_file.write_bytes(faiss_file.read_bytes()[:40])
    with pytest.raises(DataError, match="FAISS") as caught:
        DenseIndex.load(folder)
    assert caught.value.path == str(faiss_file)


@pytest.mark.parametrize("field", ["index_file", "passages_file"])
@pytest.mark.parametrize("target", ["/etc/passwd", "../outside.faiss", "sub/../../outside.faiss"])
def test_meta_paths_may_not_leave_the_index_folder(tmp_path, field, target):
    folder = _small_index().save(tmp_path / "index")
    (tmp_path / "outside.faiss").write_text("x")
    meta = json.loads((folder / "meta.json").read_text())
    meta[field] = target
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="inside the index folder"):
        DenseIndex.load(folder)


def test_meta_path_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    folder = _small_index().save(tmp_path / "index")
    meta = json.loads((folder / "meta.json").read_text())
    shutil.move(folder / meta["index_file"], tmp_path / "elsewhere.faiss")
    (folder / meta["index_file"]).symlink_to(tmp_path / "elsewhere.faiss")
    with pytest.raises(DataError, match="inside the index folder"):
        DenseIndex.load(folder)


# -- consistency -----------------------------------------------------------------------------------------


def test_search_with_an_unknown_scope_names_it(tmp_path, tiny_encoder_dir):
    out = tmp_path / "index"
    assert _cli("index", tiny_encoder_dir, _dataset(tmp_path / "data",
                                                    corpus=[{"_id": "p1", "text": "a river", "doc_id": "d1"},
                                                            {"_id": "p2", "text": "a castle", "doc_id": "d2"}],
                                                    qrels=HEADER + "q1\tp1\t1\n"), "--out", out).exit_code == 0
    _one_line_error(_cli("search", out, "river", "--scope", "nope"), "'nope'", "unknown scope")
    assert _cli("search", out, "river", "--scope", "d1", "--json").exit_code == 0
