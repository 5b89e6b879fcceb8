"""What re-rankers need from a transformers causal LM beyond answer NLLs.

The scoring backends are teachers (:mod:`uae.teachers`); UPR and the oracle need nothing but
``Teacher.score``. The judge's fast path (one forward, last position only) and RankGPT's
generation need the model itself, so this module wraps an :class:`~uae.teachers.hf.HFTeacher`
and reuses its tokenisation, truncation, BOS handling and backbone + LM-head split, so a
re-ranker and a teacher on the same model see exactly the same token ids.

:class:`TextGenerator` is the protocol RankGPT generates through; :class:`HFGenerator` is its
transformers implementation, and tests pass scripted stubs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from uae.teachers.hf import HFTeacher


def is_hf_teacher(backend: Any) -> bool:
    """Whether ``backend`` is a transformers teacher (so the model itself can be used)."""
    from uae.teachers.hf import HFTeacher

    return isinstance(backend, HFTeacher)


def _length_batches(lengths: Sequence[int], batch_tokens: int) -> Iterator[list[int]]:
    """Indices, longest first, packed so that ``rows * longest`` stays within ``batch_tokens``."""
    batch: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        longest = lengths[batch[0]] if batch else lengths[index]
        if batch and (len(batch) + 1) * longest > batch_tokens:
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


@torch.inference_mode()
def next_token_log_probs(teacher: HFTeacher, prompts: Sequence[list[int]], candidates: Sequence[int]) -> torch.Tensor:
    """``log p(candidate | prompt)`` of the token after each prompt; the LM head runs at one position per prompt.

    Args:
        teacher: The transformers teacher whose model is used.
        prompts: Token ids of each prompt (BOS included where the model wants one).
        candidates: Token ids whose next-token log-probabilities are wanted.

    Returns:
        A float32 tensor of shape ``(len(prompts), len(candidates))``, on the CPU.
    """
    out = torch.empty((len(prompts), len(candidates)), dtype=torch.float32)
    wanted = torch.tensor(list(candidates), device=teacher.device)
    for batch in _length_batches([len(p) for p in prompts], teacher.batch_tokens):
        width = len(prompts[batch[0]])
        input_ids = torch.full((len(batch), width), teacher._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            input_ids[row, : len(prompts[index])] = torch.tensor(prompts[index])
            attention_mask[row, : len(prompts[index])] = 1
        last = torch.tensor([len(prompts[i]) - 1 for i in batch], device=teacher.device)
        logits = _last_logits(teacher, input_ids.to(teacher.device), attention_mask.to(teacher.device), last)
        out[batch] = torch.log_softmax(logits, dim=-1)[:, wanted].cpu()
    return out


def _last_logits(teacher: HFTeacher, input_ids: torch.Tensor, attention_mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Float32 logits at position ``last[row]`` of each row (right padding, so pads never leak in)."""
    rows = torch.arange(len(last), device=last.device)
    if teacher.answer_only:
        hidden = teacher._hidden_states(input_ids, attention_mask)[rows, last]
        return teacher._head(hidden)
    logits = teacher.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    return logits[rows, last].float()


class TextGenerator(Protocol):
    """What RankGPT generates through: token counting, truncation and greedy generation."""

    max_length: int
    """Context length in tokens (prompt plus generated tokens)."""

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone (no special tokens)."""

    def prompt_tokens(self, prompt: str) -> int:
        """Tokens the model is fed for ``prompt`` (BOS or chat template included)."""

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """The longest head of ``text`` within ``max_tokens`` tokens, and whether it was cut."""

    def generate(self, prompt: str, max_new_tokens: int) -> str:
        """Greedy continuation of ``prompt``, at most ``max_new_tokens`` tokens, as text."""


class HFGenerator:
    """Greedy generation with the model of an :class:`~uae.teachers.hf.HFTeacher`.

    Args:
        teacher: The transformers teacher to generate with.
        chat_template: Wrap prompts in the tokenizer's chat template as one user turn;
            ``None`` does so when the tokenizer has one (instruction-tuned models).
    """

    def __init__(self, teacher: HFTeacher, chat_template: bool | None = None) -> None:
        self.teacher = teacher
        self.tokenizer = teacher.tokenizer
        self.max_length = teacher.max_length
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.chat_template = has_template if chat_template is None else chat_template and has_template

    def _ids(self, prompt: str) -> list[int]:
        if self.chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.teacher._bos + self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_tokens(self, prompt: str) -> int:
        """Tokens the model is fed for ``prompt`` (BOS or chat template included)."""
        return len(self._ids(prompt))

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """The head of ``text`` covered by its first ``max_tokens`` tokens."""
        if max_tokens <= 0:
            return "", bool(text)
        if not getattr(self.tokenizer, "is_fast", False):
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            return (text, False) if len(ids) <= max_tokens else (self.tokenizer.decode(ids[:max_tokens]), True)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) <= max_tokens:
            return text, False
        return text[: encoded["offset_mapping"][max_tokens - 1][1]], True

    @torch.inference_mode()
    def generate(self, prompt: str, max_new_tokens: int) -> str:
        """Greedy decoding (``do_sample=False``) of at most ``max_new_tokens`` tokens."""
        ids = torch.tensor([self._ids(prompt)], device=self.teacher.device)
        output = self.teacher.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=self.teacher._pad_id,
        )
        return self.tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
