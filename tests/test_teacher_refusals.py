"""Teachers that cannot score are refused with a clear error: encoders as ``hf:``, unknown or malformed options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from labeling_jobs import make_job, write_job
from typer.testing import CliRunner

from uae.cli import app
from uae.teachers import DirichletTeacher, load_teacher


def test_the_packaged_minilm_encoder_is_no_hf_teacher() -> None:
    from uae.retrieval.encoders import packaged_minilm_path

    with pytest.raises(ValueError, match=r"not a complete causal language model: \d+ weight\(s\) are missing.*cls\.predictions"):
        load_teacher(f"hf:{packaged_minilm_path()}")


def test_the_cli_refuses_an_encoder_teacher_with_exit_code_2(tmp_path: Path) -> None:
    from uae.retrieval.encoders import packaged_minilm_path

    corpus, queries, pools = make_job(n_queries=2, pool_size=2)
    data, pools_path = write_job(tmp_path, corpus, queries, pools)
    result = CliRunner().invoke(app, ["label", str(data), "--pools", str(pools_path), "--out", str(tmp_path / "labels"),
                                      "--teacher", f"hf:{packaged_minilm_path()}"])
    assert result.exit_code == 2, result.output
    assert "not a complete causal language model" in " ".join(result.output.split())
    assert not (tmp_path / "labels" / "nlls.parquet").exists()


def test_a_bidirectional_model_with_all_its_weights_is_refused(tmp_path: Path) -> None:
    from conftest import bpe_tokenizer
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = bpe_tokenizer("llama")
    torch.manual_seed(0)
    config = BertConfig(num_hidden_layers=1, num_attention_heads=2, hidden_size=32, intermediate_size=64, vocab_size=len(tokenizer))
    BertForMaskedLM(config).save_pretrained(tmp_path)  # loads as BertLMHeadModel with every weight, but is_decoder=False
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is not a causal language model: its prediction at a position depends on later tokens"):
        load_teacher(f"hf:{tmp_path}")


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("dirichlet:foo=1", {}, r"unknown option 'foo' for the dirichlet teacher; it takes mu"),
        ("dirichlet", {"foo": 1}, r"unknown option 'foo' for the dirichlet teacher"),
        ("dirichlet:mu=lots", {}, r"option mu='lots' of the dirichlet teacher: expected a float"),
        ("dirichlet:mu", {}, r"must look like key=value"),
        ("openai:http://127.0.0.1:1/v1,model=m,concurency=4", {}, r"unknown option 'concurency' for the openai teacher; it takes .*concurrency"),
    ],
)
def test_unknown_or_malformed_options_are_refused(spec: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_teacher(spec, **options)


def test_hf_options_are_checked_and_converted(bpe_lm_builder) -> None:
    model_dir = bpe_lm_builder("gpt2")
    with pytest.raises(ValueError, match=r"unknown option 'batch_size' for the hf teacher; it takes .*batch_tokens.*prefix_reuse"):
        load_teacher(f"hf:{model_dir},batch_size=8")
    with pytest.raises(ValueError, match=r"option prefix_reuse='maybe' of the hf teacher: expected a bool"):
        load_teacher(f"hf:{model_dir},prefix_reuse=maybe")
    teacher = load_teacher(f"hf:{model_dir},batch_tokens=512,full_logits=true,min_prefix_tokens=8")
    assert (teacher.batch_tokens, teacher.answer_only, teacher.min_prefix_tokens) == (512, False, 8)


def test_dirichlet_options_still_work() -> None:
    assert load_teacher("dirichlet:mu=50").mu == 50
    assert load_teacher("dirichlet", mu=20.0).mu == 20
    assert isinstance(load_teacher("dirichlet"), DirichletTeacher)
