"""The transformers teacher: answer NLLs from any causal LM on the Hugging Face hub or on disk.

Prompt and answer are tokenised separately, so the answer's tokens, and only those, are scored.
The forward pass runs the model's backbone (``model.base_model``) and applies the output
embeddings (the LM head) to the hidden states that predict answer tokens only, so the
full-vocabulary projection is never computed for prompt positions. At load time one short input
checks that backbone + head reproduce the model's logits; models that rescale their logits in
other ways fall back to the full forward.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from uae.teachers.base import NLLRequest, NLLResult, PromptTemplates, Teacher

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
_HEAD_ROWS = 1024
"""Answer positions projected onto the vocabulary at a time (bounds the logits' memory)."""


@dataclass(frozen=True)
class _Encoded:
    """One request as token ids: ``ids[:answer_start]`` is the prompt, the rest the answer."""

    index: int
    ids: list[int]
    answer_start: int
    truncated: bool

    @property
    def input_length(self) -> int:
        """Tokens fed to the model: the last answer token is only ever a target."""
        return len(self.ids) - 1


def _resolve_dtype(dtype: str | None, device: str) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPES)} or 'auto'")
    return _DTYPES[dtype]


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``dtype=`` for transformers >= 4.56, ``torch_dtype=`` before."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _gather_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)


def encode_prompt_answer(tokenizer: Any, prefix: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prefix`` and of ``answer``, tokenised separately (no special tokens).

    Whitespace that ends the prefix (``"Answer: "``) is moved to the front of the answer when the
    tokenizer merges it into the answer's first token (byte-level BPE: ``"ĠParis"``), so the
    answer is tokenised as the model would write it after the prompt. When the moved whitespace
    would become a token of its own (SentencePiece with a dummy prefix), it is dropped instead.

    Returns:
        ``(prefix_ids, answer_ids)``; ``answer_ids`` is empty when the answer has no tokens.
    """
    stem = prefix.rstrip()
    gap = prefix[len(stem) :]
    prefix_ids = tokenizer(stem, add_special_tokens=False)["input_ids"]
    if not answer.strip():
        return prefix_ids, []
    answer_ids = tokenizer(gap + answer, add_special_tokens=False)["input_ids"]
    if gap and answer_ids and not tokenizer.decode(answer_ids[:1]).strip():
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return prefix_ids, answer_ids


class HFTeacher(Teacher):
    """Answer NLLs from a transformers causal LM (GPT-2, Llama, Qwen2, Mistral, ...).

    Args:
        model_name_or_path: A hub model name or a local folder (loaded with ``local_files_only``).
        templates: Prompt templates; the answer always comes last.
        batch_tokens: Budget of padded tokens per forward pass.
        max_length: Context length; defaults to the config's ``max_position_embeddings``.
        device: ``cuda``, ``cpu``, ...; defaults to CUDA when available.
        dtype: ``bfloat16``, ``float16`` or ``float32``; defaults to bf16 on CUDA, fp32 on CPU.
        tokenizer: A separate tokenizer name or folder; defaults to the model's.
        full_logits: Compute logits at every position, as a plain forward does (for comparison
            only; answer-only scoring is used whenever the backbone and head reproduce the logits).
    """

    def __init__(
        self,
        model_name_or_path: str,
        templates: PromptTemplates = PromptTemplates(),
        batch_tokens: int = 4096,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        tokenizer: str | None = None,
        full_logits: bool = False,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name_or_path = model_name_or_path
        self.tokenizer_name_or_path = tokenizer or model_name_or_path
        self.templates = templates
        self.batch_tokens = int(batch_tokens)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _resolve_dtype(dtype, self.device)
        self.name = f"hf:{model_name_or_path}"
        self.tokenizer = AutoTokenizer.from_pretrained(
            self.tokenizer_name_or_path, local_files_only=Path(self.tokenizer_name_or_path).is_dir()
        )
        self.model = AutoModelForCausalLM.from_pretrained(
            model_name_or_path, local_files_only=Path(model_name_or_path).is_dir(), **_dtype_kwarg(self.dtype)
        )
        self.model.to(self.device).eval()
        self.max_length = int(max_length) if max_length is not None else self._context_length()
        self._bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        self._pad_id = next(
            (i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id) if i is not None), 0
        )
        self.answer_only = not full_logits and self._head_reproduces_logits()
        self.tokens_processed = 0

    def _context_length(self) -> int:
        length = getattr(self.model.config, "max_position_embeddings", None)
        if length is None:
            raise ValueError(f"{self.model_name_or_path}: the config has no max_position_embeddings; pass max_length")
        return int(length)

    def describe(self) -> dict[str, Any]:
        """Teacher name, model, tokenizer, dtype, context length and prompt templates."""
        return {
            "teacher": self.name,
            "model": self.model_name_or_path,
            "tokenizer": self.tokenizer_name_or_path,
            "dtype": str(self.dtype).removeprefix("torch."),
            "max_length": self.max_length,
            "templates": {
                "with_passage": self.templates.with_passage,
                "without_passage": self.templates.without_passage,
            },
        }

    # ---- tokenisation -------------------------------------------------------------------------

    def _encode(self, index: int, request: NLLRequest) -> _Encoded:
        """Token ids of one request, the passage cut from its end if the whole does not fit."""
        prefix_ids, answer_ids = self._split(request, request.passage)
        if not answer_ids:
            raise ValueError(
                f"request {index} (question {request.question!r}): the answer {request.answer!r} has no tokens"
            )
        budget = self.max_length + 1 - len(self._bos) - len(answer_ids)
        truncated = False
        if len(prefix_ids) > budget:
            prefix_ids = self._truncate_passage(index, request, budget)
            truncated = True
        ids = self._bos + prefix_ids + answer_ids
        return _Encoded(index, ids, len(ids) - len(answer_ids), truncated)

    def _split(self, request: NLLRequest, passage: str | None) -> tuple[list[int], list[int]]:
        prefix = self.templates.prefix(request.question, passage)
        return encode_prompt_answer(self.tokenizer, prefix, request.answer)

    def _truncate_passage(self, index: int, request: NLLRequest, budget: int) -> list[int]:
        """Prompt ids with the longest head of the passage whose re-tokenised prompt fits ``budget``."""
        empty_ids, _ = self._split(request, None if request.passage is None else "")
        if request.passage is None or len(empty_ids) > budget:
            raise ValueError(
                f"request {index}: question {request.question!r} and its answer do not fit the "
                f"context of {self.max_length} tokens even without a passage"
            )
        heads = self._passage_heads(request.passage)
        keep = len(heads)
        while keep > 0:
            prefix_ids, _ = self._split(request, heads[keep - 1])
            overflow = len(prefix_ids) - budget
            if overflow <= 0:
                return prefix_ids
            keep -= overflow
        return empty_ids

    def _passage_heads(self, passage: str) -> list[str]:
        """``heads[k - 1]`` is the passage text covered by its first ``k`` tokens."""
        if getattr(self.tokenizer, "is_fast", False):
            offsets = self.tokenizer(passage, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            return [passage[:end] for _, end in offsets]
        ids = self.tokenizer(passage, add_special_tokens=False)["input_ids"]
        return [self.tokenizer.decode(ids[:k]) for k in range(1, len(ids) + 1)]

    # ---- scoring ------------------------------------------------------------------------------

    def score(self, requests: Sequence[NLLRequest], progress: bool = False) -> list[NLLResult]:
        """Mean answer NLL (nats per answer token) of each request, in input order.

        Args:
            requests: What to score.
            progress: Show a tqdm progress bar over batches.

        Raises:
            ValueError: An answer has no tokens, or a question and its answer alone exceed the context.
        """
        encoded = [self._encode(i, request) for i, request in enumerate(requests)]
        self.tokens_processed += sum(len(item.ids) for item in encoded)
        batches = list(self._batches(encoded))
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"scoring with {self.name}", unit="batch")
        results: list[NLLResult | None] = [None] * len(encoded)
        for batch in batches:
            for item, nll in zip(batch, self._score_batch(batch)):
                results[item.index] = NLLResult(nll, len(item.ids) - item.answer_start, item.truncated)
        return results  # type: ignore[return-value]

    def _batches(self, encoded: list[_Encoded]) -> Iterator[list[_Encoded]]:
        """Longest first, packed so that ``rows * longest`` stays within ``batch_tokens``."""
        batch: list[_Encoded] = []
        for item in sorted(encoded, key=lambda e: e.input_length, reverse=True):
            longest = batch[0].input_length if batch else item.input_length
            if batch and (len(batch) + 1) * longest > self.batch_tokens:
                yield batch
                batch = []
            batch.append(item)
        if batch:
            yield batch

    @torch.inference_mode()
    def _score_batch(self, batch: list[_Encoded]) -> list[float]:
        width = max(item.input_length for item in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, positions, targets = [], [], []
        for row, item in enumerate(batch):
            input_ids[row, : item.input_length] = torch.tensor(item.ids[:-1])
            attention_mask[row, : item.input_length] = 1
            n_answer = len(item.ids) - item.answer_start
            rows += [row] * n_answer
            positions += range(item.answer_start - 1, len(item.ids) - 1)
            targets += item.ids[item.answer_start :]
        log_probs = self._target_log_probs(
            input_ids.to(self.device),
            attention_mask.to(self.device),
            torch.tensor(rows, device=self.device),
            torch.tensor(positions, device=self.device),
            torch.tensor(targets, device=self.device),
        )
        row_index = torch.tensor(rows, device=self.device)
        totals = torch.zeros(len(batch), device=self.device).index_add_(0, row_index, -log_probs)
        counts = torch.bincount(row_index, minlength=len(batch))
        return (totals / counts).tolist()

    def _target_log_probs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        rows: torch.Tensor,
        positions: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """``log p(targets)`` predicted at ``(rows, positions)``."""
        if self.answer_only:
            hidden = self._hidden_states(input_ids, attention_mask)[rows, positions]
            spans = [slice(i, i + _HEAD_ROWS) for i in range(0, len(hidden), _HEAD_ROWS)]
            return torch.cat([_gather_log_probs(self._head(hidden[span]), targets[span]) for span in spans])
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        return _gather_log_probs(logits[rows, positions].float(), targets)

    def _hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return output.last_hidden_state

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on some hidden states, in float32, with Gemma-2-style soft-capping if set."""
        logits = self.model.get_output_embeddings()(hidden).float()
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    @torch.inference_mode()
    def _head_reproduces_logits(self) -> bool:
        """Whether backbone + LM head give the model's own logits (not so when a model rescales them)."""
        if self.model.base_model is self.model or self.model.get_output_embeddings() is None:
            return False
        input_ids = torch.arange(8, device=self.device)[None] % self.model.config.vocab_size
        attention_mask = torch.ones_like(input_ids)
        expected = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[0].float()
        try:
            actual = self._head(self._hidden_states(input_ids, attention_mask)[0])
        except (TypeError, AttributeError):
            return False
        tolerance = 1e-2 * expected.abs().max().item()  # loose for bf16; a rescaling is far larger
        return actual.shape == expected.shape and torch.allclose(actual, expected, rtol=1e-2, atol=tolerance)
