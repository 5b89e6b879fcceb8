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


# ---- byte-level BPE tokenizers and tiny GPT-2-, Llama-, Qwen2-shaped models built with them ----------

BPE_CORPUS = [
    "Context: the eiffel tower is a wrought iron lattice tower in Paris, France.\nQuestion: where is the eiffel tower?\nAnswer: in Paris",
    "Question: who wrote hamlet?\nAnswer: William Shakespeare wrote Hamlet around 1600.",
    "the river, the stone bridge and the old harbour of the town; the market by the castle tower.",
    "The forest valley holds a mill. What does the tower of town 3 say? It says value3 and more.",
    "Arithmetic: two plus two is four (4). Name a colour: blue, green or red!",
    "Numbers 0123456789 and symbols %$#@&*()[]{}<>=+-_/\\|~^`'\" are bytes too.",
]
BPE_SHAPES = ("gpt2", "llama", "qwen2")
"""The shapes every test over real tokenisers runs on: GPT-2 (BOS = EOS, never added by the tokenizer),
Llama (a real ``<s>`` BOS its post-processor adds) and Qwen2 (no BOS at all)."""
SLIDING_SHAPES = ("mistral_sliding", "qwen2_sliding", "gemma2_softcap")
"""Shapes with sliding-window attention (window 16) and, for Gemma-2, soft-capped attention and logits."""


def train_bpe_tokenizer(vocab_size: int = 512):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on :data:`BPE_CORPUS` (a few milliseconds)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                  special_tokens=["<s>", "</s>", "<pad>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(BPE_CORPUS * 4, trainer)
    return tokenizer


def bpe_tokenizer(kind: str):
    """A ``PreTrainedTokenizerFast`` over a fresh :func:`train_bpe_tokenizer`, special tokens as the real ``kind`` has them.

    ``gpt2``: ``<|endoftext|>`` as BOS and EOS, never added by the tokenizer; ``llama``: ``<s>`` BOS
    added by the post-processor, ``</s>`` EOS; ``qwen2``: no BOS, ``<|endoftext|>`` EOS.
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = train_bpe_tokenizer()
    if kind == "llama":
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                               special_tokens=[("<s>", backend.token_to_id("<s>"))])
        return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    if kind == "gpt2":
        return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                       pad_token="<pad>")
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<pad>")


def bpe_model_config(shape: str, vocab_size: int, context: int, tokenizer):
    """The config of a 2-layer, 64-wide model of ``shape`` (:data:`BPE_SHAPES`, :data:`SLIDING_SHAPES`)."""
    import transformers

    ids = {"vocab_size": vocab_size, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    if shape == "gpt2":
        return transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=context, **ids)
    body = {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 64,
            "intermediate_size": 128, "max_position_embeddings": context, **ids}
    if shape == "llama":
        return transformers.LlamaConfig(**body)
    if shape == "qwen2":
        return transformers.Qwen2Config(**body, tie_word_embeddings=True)
    if shape == "qwen2_sliding":
        return transformers.Qwen2Config(**body, use_sliding_window=True, sliding_window=16, max_window_layers=1)
    if shape == "mistral_sliding":
        return transformers.MistralConfig(**body, sliding_window=16)
    if shape == "gemma2_softcap":
        return transformers.Gemma2Config(**body, head_dim=16, sliding_window=16, attn_logit_softcapping=50.0,
                                         final_logit_softcapping=30.0)
    raise ValueError(f"unknown shape {shape!r}")


def build_bpe_lm(path: Path, shape: str, context: int = 256, seed: int = 0) -> Path:
    """Save a random model of ``shape`` with a byte-level BPE tokenizer shaped like the real one's, to ``path``."""
    import torch
    from transformers import AutoModelForCausalLM

    kind = {"gpt2": "gpt2", "qwen2": "qwen2", "qwen2_sliding": "qwen2"}.get(shape, "llama")
    tokenizer = bpe_tokenizer(kind)
    config = bpe_model_config(shape, len(tokenizer), context, tokenizer)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def bpe_lm_builder(tmp_path_factory: pytest.TempPathFactory):
    """``bpe_lm_builder(shape, context=256)``: a saved tiny random model with a BPE tokenizer, built once per session."""
    built: dict[tuple[str, int], Path] = {}

    def build(shape: str, context: int = 256) -> Path:
        if (shape, context) not in built:
            built[shape, context] = build_bpe_lm(tmp_path_factory.mktemp(f"bpe_{shape}_{context}"), shape, context)
        return built[shape, context]

    return build


@pytest.fixture(scope="session", params=BPE_SHAPES)
def bpe_lm_dir(request: pytest.FixtureRequest, bpe_lm_builder) -> Path:
    """A tiny random GPT-2-, Llama- or Qwen2-shaped model with a byte-level BPE tokenizer (context 256)."""
    return bpe_lm_builder(request.param)


@pytest.fixture(scope="module")
def local_ray():
    """A fresh local Ray instance on 2 CPUs for a test module (skipped when Ray is not installed)."""
    ray = pytest.importorskip("ray", reason="Ray is the optional 'ray' extra: pip install 'uae[ray]'")
    # "local" starts a fresh instance even when RAY_ADDRESS or /tmp/ray names a running cluster.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
