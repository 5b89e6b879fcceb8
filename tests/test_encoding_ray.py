"""Corpus encoding on a local CPU Ray instance: shards on disk, the single-process embeddings, resume after a kill."""

from __future__ import annotations

import numpy as np
import pytest
from labeling_jobs import make_job, write_job
from typer.testing import CliRunner

from uae.errors import ManifestMismatch
from uae.retrieval.encoders import encode, load_encoder

SHARD = 7


@pytest.fixture(scope="module")
def corpus():
    return make_job(n_queries=4, n_passages=30)[0]


@pytest.fixture(scope="module")
def reference(corpus, tiny_encoder_dir) -> np.ndarray:
    """One process, one encoder, the whole corpus."""
    return encode(load_encoder(str(tiny_encoder_dir)), corpus.texts, progress=False)


class Killed(Exception):
    """The driver dying after some shards are on disk."""


def test_local_shards_resume_after_a_kill_and_refuse_other_settings(corpus, reference, tiny_encoder_dir, tmp_path) -> None:
    from uae.retrieval.ray_encoding import encode_corpus_local

    written: list[int] = []

    def die_after_two(number: int) -> None:
        written.append(number)
        if len(written) == 2:
            raise Killed

    with pytest.raises(Killed):
        encode_corpus_local(str(tiny_encoder_dir), corpus, tmp_path, shard_size=SHARD, progress=False, on_shard=die_after_two)
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "shards").glob("shard-*.parquet")}
    assert len(finished) == 2
    resumed: list[int] = []
    vectors = encode_corpus_local(str(tiny_encoder_dir), corpus, tmp_path, shard_size=SHARD, progress=False, on_shard=resumed.append)
    assert resumed == [2, 3, 4]
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in finished.items())
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    with pytest.raises(ManifestMismatch, match="shard_size"):
        encode_corpus_local(str(tiny_encoder_dir), corpus, tmp_path, shard_size=SHARD + 1, progress=False)
    with pytest.raises(ManifestMismatch, match="ids_sha256"):
        encode_corpus_local(str(tiny_encoder_dir), type(corpus)(list(corpus)[:-1]), tmp_path, shard_size=SHARD, progress=False)


def test_shards_hold_the_single_process_embeddings(local_ray, corpus, reference, tiny_encoder_dir, tmp_path) -> None:
    from uae.retrieval.ray_encoding import encode_corpus_ray, shard_path

    vectors = encode_corpus_ray(str(tiny_encoder_dir), corpus, tmp_path, shard_size=SHARD, workers=2, progress=False)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    assert [shard_path(tmp_path, n).is_file() for n in range(6)] == [True] * 5 + [False]
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["manifest.json"] + [f"shard-{n:05d}.parquet" for n in range(5)]


def test_a_killed_job_resumes_from_its_finished_shards(local_ray, corpus, reference, tiny_encoder_dir, tmp_path) -> None:
    from uae.retrieval.ray_encoding import encode_corpus_ray

    written: list[int] = []

    def die_after_two(number: int) -> None:
        written.append(number)
        if len(written) == 2:
            raise Killed

    with pytest.raises(Killed):
        encode_corpus_ray(str(tiny_encoder_dir), corpus, tmp_path, shard_size=SHARD, workers=2, progress=False,
                          on_shard=die_after_two)
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "shards").glob("shard-*.parquet")}
    assert len(finished) == 2
    resumed: list[int] = []
    vectors = encode_corpus_ray(str(tiny_encoder_dir), corpus, tmp_path, shard_size=SHARD, workers=2, progress=False,
                                on_shard=resumed.append)
    assert sorted(resumed) == sorted(set(range(5)) - set(written))
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in finished.items())
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    with pytest.raises(ManifestMismatch, match="shard_size"):
        encode_corpus_ray(str(tiny_encoder_dir), corpus, tmp_path, shard_size=SHARD + 1, progress=False)


def test_uae_index_ray_builds_the_same_index(local_ray, tiny_encoder_dir, tmp_path) -> None:
    from uae.cli import app
    from uae.retrieval.retriever import Retriever

    corpus, queries, pools = make_job(n_queries=4, n_passages=30)
    data, _ = write_job(tmp_path, corpus, queries, pools)
    out = tmp_path / "ix"
    result = CliRunner().invoke(app, ["index", str(tiny_encoder_dir), str(data), "--out", str(out), "--ray", "--workers", "2",
                                      "--shard-size", "8"])
    assert result.exit_code == 0, result.output
    assert len(list((out / "shards").glob("shard-*.parquet"))) == 4
    question = [q.text for q in queries]
    got = Retriever.load(out).search(question, 5)
    expected = Retriever.build(str(tiny_encoder_dir), corpus, progress=False).search(question, 5)
    assert [[h.passage_id for h in row] for row in got] == [[h.passage_id for h in row] for row in expected]


def test_ray_options_without_ray_are_refused(tmp_path) -> None:
    from uae.cli import app

    result = CliRunner().invoke(app, ["index", "minilm", str(tmp_path), "--out", str(tmp_path / "ix"), "--workers", "2"])
    assert result.exit_code == 2 and "--workers only apply with --ray" in result.output
