"""Shared fixtures: tiny random-weight models built from configs, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

TINY_SIZE = {"layers": 2, "heads": 2, "hidden": 32}

SHARED_DATA = Path(os.environ.get("UAE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
"""The real datasets beside the checkout (``../shared/data``); tests that need them skip without it."""


def _minilm_tokenizer():
    from transformers import AutoTokenizer

    from uae.retrieval.encoders import packaged_minilm_path

    return AutoTokenizer.from_pretrained(packaged_minilm_path(), local_files_only=True)


def build_tiny_gpt2(path: Path, n_positions: int = 128, seed: int = 0) -> Path:
    """Save a 2-layer random GPT-2 with the packaged MiniLM (WordPiece) tokenizer to ``path``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = _minilm_tokenizer()
    config = GPT2Config(
        n_layer=TINY_SIZE["layers"],
        n_head=TINY_SIZE["heads"],
        n_embd=TINY_SIZE["hidden"],
        n_positions=n_positions,
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_llama(path: Path, max_position_embeddings: int = 128, seed: int = 0) -> Path:
    """Save a 2-layer random Llama; its tokenizer uses ``[CLS]`` as BOS so BOS handling is exercised."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _minilm_tokenizer()
    tokenizer.bos_token = tokenizer.cls_token
    config = LlamaConfig(
        num_hidden_layers=TINY_SIZE["layers"],
        num_attention_heads=TINY_SIZE["heads"],
        num_key_value_heads=TINY_SIZE["heads"],
        hidden_size=TINY_SIZE["hidden"],
        intermediate_size=2 * TINY_SIZE["hidden"],
        max_position_embeddings=max_position_embeddings,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved 2-layer, 32-wide random GPT-2 (context 128) with the MiniLM tokenizer."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved 2-layer, 32-wide random Llama (context 128) with the MiniLM tokenizer and a BOS token."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def tiny_lm_builder(tmp_path_factory: pytest.TempPathFactory):
    """Build a tiny model with another context length: ``tiny_lm_builder("gpt2" | "llama", context)``."""
    builders = {"gpt2": build_tiny_gpt2, "llama": build_tiny_llama}

    def build(arch: str, context: int) -> Path:
        return builders[arch](tmp_path_factory.mktemp(f"tiny_{arch}_{context}"), context)

    return build


def build_tiny_encoder(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer random BERT as a sentence-transformers folder (mean pooling, normalised)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    tokenizer = _minilm_tokenizer()
    config = BertConfig(
        num_hidden_layers=TINY_SIZE["layers"],
        num_attention_heads=TINY_SIZE["heads"],
        hidden_size=TINY_SIZE["hidden"],
        intermediate_size=2 * TINY_SIZE["hidden"],
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    backbone = path / "backbone"
    BertModel(config).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()])
    model.save(str(path / "encoder"))
    return path / "encoder"


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved 2-layer, 32-wide random BERT sentence encoder with the MiniLM tokenizer."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"))
