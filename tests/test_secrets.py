"""API keys: read from the environment, sent to the server, never written into a run's records; refused in specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from uae.config import GenerationConfig, LabelingConfig, MiningConfig, RunConfig, TrainingConfig
from uae.data.beir import write_dataset
from uae.data.synthetic import make_quickstart_dataset
from uae.errors import TeacherServerError
from uae.pipeline import run_pipeline
from uae.teachers import load_teacher
from uae.testing import serve

SECRET = "sk-uae-test-secret-0123456789"


def test_a_key_in_a_spec_is_refused_with_a_pointer_to_the_environment():
    with pytest.raises(ValueError, match="OPENAI_API_KEY.*api_key_env"):
        load_teacher(f"openai:http://127.0.0.1:9/v1,api_key={SECRET}")
    from uae.evaluation.readers import load_reader

    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        load_reader(f"openai:http://127.0.0.1:9/v1,api_key={SECRET}")


def test_the_key_comes_from_openai_api_key_or_a_named_variable(tiny_gpt2_dir, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with serve(tiny_gpt2_dir, api_key=SECRET) as server:
        with pytest.raises(TeacherServerError, match="401"):
            load_teacher(f"openai:{server.base_url}", max_retries=0)
        monkeypatch.setenv("MY_LLM_KEY", SECRET)
        assert load_teacher(f"openai:{server.base_url},api_key_env=MY_LLM_KEY").model == str(tiny_gpt2_dir)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        assert load_teacher(f"openai:{server.base_url}").model == str(tiny_gpt2_dir)


def test_no_secret_lands_in_any_file_of_a_run(tiny_gpt2_dir, tiny_encoder_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    data = write_dataset(make_quickstart_dataset(n_entities=8), tmp_path / "data")
    with serve(tiny_gpt2_dir, api_key=SECRET) as server:
        config = RunConfig(
            data=str(data), out=str(tmp_path / "run"), base_model=str(tiny_encoder_dir),
            labeling=LabelingConfig(teacher=f"openai:{server.base_url}"),
            generation=GenerationConfig(backend=f"openai:{server.base_url}", max_new_tokens=2),
            mining=MiningConfig(pool_size=4, depth=10),
            training=TrainingConfig(steps=1, batch_size=4, train_pool_size=4, max_seq_length=32),
        )
        run_pipeline(config, progress=False)
        assert server.state.requests > 0
    written = [path for path in Path(tmp_path / "run").rglob("*") if path.is_file()]
    names = {path.name for path in written}
    assert {"config.json", "report.md", "uae_training.json", "README.md"} <= names
    leaking = [str(path) for path in written if SECRET.encode() in path.read_bytes()]
    assert leaking == []
    card = (tmp_path / "run" / "models" / "uae" / "README.md").read_text()
    assert "| Teacher (utility labels) | `openai:" in card and "## Evaluation (test split)" in card
