"""The transformers teacher: answer NLLs from any causal LM on the Hugging Face hub or on disk.

Prompt and answer are tokenised separately, so the answer's tokens, and only those, are scored.
The forward pass runs the model's backbone (``model.base_model``) and applies the output
embeddings (the LM head) to the hidden states that predict answer tokens only, so the
full-vocabulary projection is never computed for prompt positions (:class:`~uae.teachers.causal_lm.CausalLM`,
which checks at load time that backbone + head reproduce the model's logits; models that rescale
their logits in other ways fall back to the full forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from uae.teachers.base import NLLRequest, NLLResult, PromptTemplates, Teacher
from uae.teachers.causal_lm import CausalLM, EncodedRequest, PromptEncoder, token_budget_batches


class HFTeacher(CausalLM, Teacher):
    """Answer NLLs from a transformers causal LM (GPT-2, Llama, Qwen2, Mistral, ...).

    The model itself is a :class:`~uae.teachers.causal_lm.CausalLM`, which the re-rankers and
    readers built on this teacher use as well.

    Args:
        model_name_or_path: A hub model name or a local folder (loaded with ``local_files_only``).
        templates: Prompt templates; the answer always comes last.
        **lm_options: ``batch_tokens`` (padded tokens per forward pass), ``max_length``, ``device``,
            ``dtype``, ``tokenizer``, ``full_logits`` of :class:`~uae.teachers.causal_lm.CausalLM`
            (answer-only scoring is used whenever the backbone and head reproduce the logits).
    """

    def __init__(self, model_name_or_path: str, templates: PromptTemplates = PromptTemplates(), **lm_options: Any) -> None:
        super().__init__(model_name_or_path, **lm_options)
        self.templates = templates
        self.name = f"hf:{model_name_or_path}"
        self.prompts = PromptEncoder(self.tokenizer, templates, self.max_length)
        self.tokens_processed = 0

    def describe(self) -> dict[str, Any]:
        """Teacher name, model, tokenizer, dtype, context length and prompt templates."""
        return {
            "teacher": self.name,
            **super().describe(),
            "templates": {
                "with_passage": self.templates.with_passage,
                "without_passage": self.templates.without_passage,
            },
        }

    def encode(self, index: int, request: NLLRequest) -> EncodedRequest:
        """Token ids of one request (see :meth:`~uae.teachers.causal_lm.PromptEncoder.encode`)."""
        return self.prompts.encode(index, request)

    def score(self, requests: Sequence[NLLRequest], progress: bool = False) -> list[NLLResult]:
        """Mean answer NLL (nats per answer token) of each request, in input order.

        Args:
            requests: What to score.
            progress: Show a tqdm progress bar over batches.

        Raises:
            ValueError: An answer has no tokens, or a question and its answer alone exceed the context.
        """
        encoded = [self.encode(i, request) for i, request in enumerate(requests)]
        self.tokens_processed += sum(len(item.ids) for item in encoded)
        batches = [[encoded[i] for i in batch]
                   for batch in token_budget_batches([item.input_length for item in encoded], self.batch_tokens)]
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"scoring with {self.name}", unit="batch")
        results: list[NLLResult | None] = [None] * len(encoded)
        for batch in batches:
            for item, nll in zip(batch, self._score_batch(batch)):
                results[item.index] = NLLResult(nll, len(item.ids) - item.answer_start, item.truncated)
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _score_batch(self, batch: list[EncodedRequest]) -> list[float]:
        input_ids, attention_mask = self.pad([item.ids[:-1] for item in batch])
        rows, positions, targets = [], [], []
        for row, item in enumerate(batch):
            n_answer = len(item.ids) - item.answer_start
            rows += [row] * n_answer
            positions += range(item.answer_start - 1, len(item.ids) - 1)
            targets += item.ids[item.answer_start :]
        log_probs = self.target_log_probs(
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
