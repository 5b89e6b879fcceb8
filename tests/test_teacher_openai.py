"""The openai teacher against the testing server: parity with hf, retries, refusals, truncation, CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from labeling_jobs import expected_keys, make_job, write_job
from typer.testing import CliRunner

from uae.cli import app
from uae.data.schema import Passage
from uae.errors import PromptLogprobsUnavailable, TeacherServerError
from uae.labeling import label_pools, read_labels
from uae.teachers import NLLRequest, load_teacher
from uae.teachers.hf import HFTeacher
from uae.teachers.openai import OpenAICompatTeacher, PromptToken, answer_token_indices
from uae.testing import serve

REQUESTS = [
    NLLRequest("where is the eiffel tower?", "in paris, france", "the eiffel tower is a wrought iron tower in paris."),
    NLLRequest("who wrote hamlet?", "william shakespeare"),
    NLLRequest("what is 2 + 2?", "4", "arithmetic: two plus two is four (4)."),
    NLLRequest("name a colour", "blue", ""),
]


def fast_retries(**options) -> dict:
    return {"backoff": 0.01, "max_backoff": 0.05, **options}


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def arch_dir(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(f"tiny_{request.param}_dir")


@pytest.fixture(scope="module")
def server(arch_dir: Path):
    with serve(arch_dir) as running:
        yield running


@pytest.mark.parametrize("mode", ["echo", "prompt_logprobs"])
def test_nlls_match_hf_teacher(arch_dir: Path, server, mode: str) -> None:
    expected = HFTeacher(str(arch_dir)).score(REQUESTS)
    with OpenAICompatTeacher(server.base_url, mode=mode, concurrency=3) as teacher:
        actual = teacher.score(REQUESTS)
        assert teacher.tokens_processed > sum(r.answer_tokens for r in actual)
    assert [r.nll for r in actual] == pytest.approx([r.nll for r in expected], abs=1e-4)
    assert [r.answer_tokens for r in actual] == [r.answer_tokens for r in expected]
    assert not any(r.truncated for r in actual)


def test_failing_then_recovering_server_yields_complete_correct_labels(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    corpus, queries, pools = make_job(n_queries=5)
    reference = label_pools(queries, pools, corpus, HFTeacher(str(tiny_gpt2_dir)), tmp_path / "hf", part_queries=2, progress=False)
    with serve(tiny_gpt2_dir, fail_first=7) as flaky:
        teacher = OpenAICompatTeacher(flaky.base_url, concurrency=4, **fast_retries())
        summary = label_pools(queries, pools, corpus, teacher, tmp_path / "openai", part_queries=2, progress=False)
        assert flaky.state.failures == 7
    records = read_labels(tmp_path / "openai")
    keys = [(r.query_id, r.passage_id, r.answer_index) for r in records]
    assert len(keys) == len(set(keys)) and set(keys) == expected_keys(queries, pools)
    by_key = {(r.query_id, r.passage_id, r.answer_index): r.nll for r in read_labels(tmp_path / "hf")}
    assert [r.nll for r in records] == pytest.approx([by_key[k] for k in keys], abs=1e-4)
    assert summary.pairs == reference.pairs
    assert summary.tokens is not None and summary.tokens > 0
    assert json.loads((tmp_path / "openai" / "labeling_summary.json").read_text())["tokens_per_second"] > 0


@pytest.mark.parametrize("mode", ["echo", "prompt_logprobs"])
def test_server_without_prompt_logprobs_gives_clear_error(tiny_gpt2_dir: Path, mode: str) -> None:
    with serve(tiny_gpt2_dir, logprobs=False) as bare:
        teacher = OpenAICompatTeacher(bare.base_url, mode=mode)
        with pytest.raises(PromptLogprobsUnavailable, match="cannot return prompt log-probs.*echo=True"):
            teacher.score(REQUESTS[:1])


def test_server_that_never_recovers_fails_after_the_retries(tiny_gpt2_dir: Path) -> None:
    with serve(tiny_gpt2_dir, fail_first=10_000) as down:
        teacher = OpenAICompatTeacher(down.base_url, model="m", **fast_retries(max_retries=2))
        with pytest.raises(TeacherServerError, match="after 2 retries.*HTTP 503"):
            teacher.score(REQUESTS[:1])
        assert down.state.requests == 3


def test_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    teacher = OpenAICompatTeacher(f"http://127.0.0.1:{port}/v1", model="m", **fast_retries(max_retries=1))
    with pytest.raises(TeacherServerError, match="ConnectError"):
        teacher.score(REQUESTS[:1])


def test_passage_over_the_context_is_cut_and_counted(tiny_lm_builder, tmp_path: Path) -> None:
    short_context = tiny_lm_builder("gpt2", 64)
    corpus, queries, pools = make_job(n_queries=2, pool_size=2)
    long_text = "the harbour of the town is old and wide. " * 20
    corpus.passages[1] = Passage(corpus.passages[1].id, long_text)
    with serve(short_context) as server:
        summary = label_pools(queries, pools, corpus, OpenAICompatTeacher(server.base_url), tmp_path, progress=False)
    table = pq.read_table(tmp_path / "nlls.parquet")
    truncated = {pid for pid, cut in zip(table["passage_id"].to_pylist(), table["truncated"].to_pylist()) if cut}
    assert truncated == {"p001"}
    assert summary.truncated == 2  # p001 is in both pools
    assert json.loads((tmp_path / "labeling_summary.json").read_text())["truncated_passages"] == 2


def test_answer_tokens_are_found_from_the_end_whatever_the_start_offset() -> None:
    # vLLM-style: "<s>" shifts every offset by 3; byte-level BPE merges the gap into " Paris"
    texts = ["<s>", "Question", ":", " where", "?", "\n", "Answer", ":", " Paris", ",", " France"]
    offsets = [sum(len(t) for t in texts[:i]) for i in range(len(texts))]
    tokens = [PromptToken(t, o, None if i == 0 else -1.0) for i, (t, o) in enumerate(zip(texts, offsets))]
    assert answer_token_indices(tokens, len(" Paris, France")) == [8, 9, 10]
    # a whitespace token of its own (SentencePiece-style gap) is not part of the answer
    spaced = tokens[:8] + [PromptToken(" ", offsets[8], -1.0), PromptToken("Paris", offsets[8] + 1, -1.0)]
    assert answer_token_indices(spaced, len(" Paris")) == [9]


def test_load_teacher_and_cli_use_the_served_model(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    corpus, queries, pools = make_job(n_queries=3)
    data, pools_path = write_job(tmp_path, corpus, queries, pools)
    with serve(tiny_gpt2_dir, served_name="tiny-gpt2") as server:
        discovered = load_teacher(f"openai:{server.base_url}")
        assert discovered.name == "openai:tiny-gpt2"
        assert load_teacher(f"openai:{server.base_url},model=tiny-gpt2,concurrency=2").concurrency == 2
        with pytest.raises(TeacherServerError, match="does not exist"):
            load_teacher(f"openai:{server.base_url}", model="other").score(REQUESTS[:1])
        result = CliRunner().invoke(app, ["label", str(data), "--pools", str(pools_path), "--out", str(tmp_path / "labels"),
                                          "--teacher", f"openai:{server.base_url}", "--model", "tiny-gpt2"])
    assert result.exit_code == 0, result.output
    assert {(r.query_id, r.passage_id, r.answer_index) for r in read_labels(tmp_path / "labels")} == expected_keys(queries, pools)
    manifest = json.loads((tmp_path / "labels" / "manifest.json").read_text())
    assert manifest["teacher"]["teacher"] == "openai:tiny-gpt2" and "127.0.0.1" not in json.dumps(manifest)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        OpenAICompatTeacher("http://127.0.0.1:1/v1", model="m", mode="chat")
    with pytest.raises(ValueError, match="http"):
        load_teacher("openai:localhost:8000", model="m")
