"""Run configs: defaults, path resolution, and errors that name the file and the field."""

from __future__ import annotations

import pytest

from uae.config import load_config
from uae.errors import DataError


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "run.yaml"
    path.write_text("data: ../data\nout: ../runs/x\ntraining:\n  steps: 5\n  loss: pool_kl\n")
    config = load_config(path)
    assert config.data == str(tmp_path / "cfg" / ".." / "data")
    assert config.out == str(tmp_path / "cfg" / ".." / "runs" / "x")
    assert config.training.steps == 5 and config.training.loss == "pool_kl"
    assert config.base_model == "minilm" and config.mining.pool_size == 16


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("data: d\ntraining:\n  stepz: 5\n", "training.stepz"),
        ("data: d\ntraining:\n  loss: cosine\n", "training.loss"),
        ("data: d\ntargets:\n  tau_t: 0\n", "targets.tau_t"),
        ("out: x\n", "data"),
        ("data: [unclosed\n", "valid YAML"),
        ("- a\n- b\n", "mapping"),
    ],
)
def test_bad_configs_name_the_file_and_the_field(tmp_path, text, phrase):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) and phrase in str(caught.value)


def test_the_example_config_holds_the_library_defaults_and_its_data():
    from pathlib import Path

    from uae.config import RunConfig
    from uae.data.beir import read_dataset

    examples = Path(__file__).parents[1] / "examples"
    config = load_config(examples / "config.yaml")
    defaults = RunConfig(data=config.data, out=config.out)
    assert config.model_dump() == defaults.model_dump()  # one set of defaults: the config shows them, it does not differ
    dataset = read_dataset(config.data)  # a fresh clone holds the data the example runs on
    assert {"train", "test"} <= set(dataset.qrels) and len(dataset.corpus) > 100


def test_the_example_data_is_the_synthetic_generator_output(tmp_path):
    from pathlib import Path

    from uae.data.synthetic import write_quickstart_data

    generated = write_quickstart_data(tmp_path / "data")
    committed = Path(__file__).parents[1] / "examples" / "data"
    for path in sorted(p.relative_to(generated) for p in generated.rglob("*") if p.is_file()):
        assert (committed / path).read_bytes() == (generated / path).read_bytes(), path
