"""The model card: base model and its licence, teacher, loss, temperatures, data size, dev and eval tables."""

from __future__ import annotations

from uae.training.trainer import add_eval_to_card, base_model_licence, base_model_name, write_record

GENERATED = """---
tags:
- sentence-transformers
library_name: sentence-transformers
---

# SentenceTransformer

<!-- - **Base model:** [Unknown](https://huggingface.co/unknown) -->
<!-- - **License:** Unknown -->
"""

RECORD = {
    "teacher": "hf:Qwen/Qwen2.5-0.5B",
    "targets": {"tau_t": 0.1, "normalize": "zscore"},
    "data": {"path": "squad", "split": "train", "queries": 90, "dev_questions": 10},
    "base_model": "minilm",
    "loss": {"name": "um_infonce", "tau_s": 0.05, "hard_mix": 0.0},
    "training": {"steps": 160, "batch_size": 8, "learning_rate": 3e-05},
    "rows": 90,
    "selection": {"verdict": "the best student beats the base", "base": {"map": 0.5}, "best": {"map": 0.6}},
    "train_seconds": 12.3,
}


def test_the_packaged_minilm_is_named_and_keeps_its_licence():
    assert base_model_name("minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model_licence("minilm") == "apache-2.0"


def test_card_is_a_readable_table_with_the_base_model_in_its_front_matter(tmp_path):
    (tmp_path / "README.md").write_text(GENERATED)
    write_record(tmp_path, RECORD, [])
    card = (tmp_path / "README.md").read_text()
    front = card.split("---")[1]
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in front and "license: apache-2.0" in front
    assert "Unknown" not in card
    assert "- **Base model:** [sentence-transformers/all-MiniLM-L6-v2](https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2)" in card
    for row in ("| Teacher (utility labels) | `hf:Qwen/Qwen2.5-0.5B` |", "| Student temperature tau_s | 0.05 |",
                "| Teacher temperature tau_t | 0.1 (utility normalisation zscore) |", "| Loss | `um_infonce`, hard_mix 0.0 |",
                "| Training data | 90 training questions (train split), 10 held out for model selection |",
                "| base | 0.5000 |", "| student | 0.6000 |"):
        assert row in card, row
    assert '`{"' not in card  # no JSON dump

    add_eval_to_card(tmp_path, {"base": {"map": 0.4}, "uae": {"map": 0.45}}, "test", "uae")
    add_eval_to_card(tmp_path, {"base": {"map": 0.4}, "uae": {"map": 0.47}}, "test", "uae")
    card = (tmp_path / "README.md").read_text()
    assert card.count("## Evaluation (test split)") == 1 and "| **uae** (this model) | 0.4700 |" in card
