"""The transformers teacher: answer NLLs from any causal LM on the Hugging Face hub or on disk.

Prompt and answer are tokenised separately, so the answer's tokens, and only those, are scored.
The forward pass runs the model's backbone (``model.base_model``) and applies the output
embeddings (the LM head) to the hidden states that predict answer tokens only, so the
full-vocabulary projection is never computed for prompt positions (:class:`~uae.teachers.causal_lm.CausalLM`,
which checks at load time that backbone + head reproduce the model's logits; models that rescale
their logits in other ways fall back to the full forward).

**Passage-prefix reuse** (on by default; ``prefix_reuse=False`` or ``hf:MODEL,prefix_reuse=false``
turns it off). The requests of one ``score`` call that share a passage share the head of their
prompts. :func:`uae.teachers.prefix.prefix_groups` finds, on token ids, the prefix they have in
common (BOS and passage included, capped before the first answer token); the prefix runs once at
batch 1, its key/value cache is copied and repeated over a batch of continuations (question and
answer, right-padded, at positions ``prefix + 0, 1, ...``, with the mask spanning prefix and
continuation), and the answer tokens are scored on top, in batches of at most ``batch_tokens``
counting prefix and continuation per row (the memory the repeated cache takes). Right padding keeps
sliding-window layers exact (a left pad would sit inside the window); soft-capped attention and
logits are the model's own code on both paths. Reuse is used only where it is exact: every cache
layer must be a full or sliding-window attention layer, and at load time a probe compares reused
and uncached NLLs (within 1e-4 in float32); otherwise every request is scored uncached, and the
reason is logged once and counted (``stats()["prefix_reuse"]["fallbacks"]``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import torch

from uae.teachers.base import NLLRequest, NLLResult, PromptTemplates, Teacher
from uae.teachers.causal_lm import CausalLM, EncodedRequest, PrefixReuseUnsupported, PromptEncoder, token_budget_batches
from uae.teachers.prefix import MIN_PREFIX_TOKENS, PrefixGroup, ReuseStats, fed_tokens, prefix_groups

logger = logging.getLogger(__name__)

PROBE_TOLERANCE = {torch.float32: 1e-4}
"""Largest reused-versus-uncached NLL difference the load-time probe accepts, per dtype."""
HALF_PROBE_TOLERANCE = 5e-2
"""The same for 16-bit dtypes, whose matmuls round differently for different shapes."""
TURNED_OFF = "turned off (prefix_reuse=False)"


class HFTeacher(CausalLM, Teacher):
    """Answer NLLs from a transformers causal LM (GPT-2, Llama, Qwen2, Mistral, ...).

    The model itself is a :class:`~uae.teachers.causal_lm.CausalLM`, which the re-rankers and
    readers built on this teacher use as well.

    Args:
        model_name_or_path: A hub model name or a local folder (loaded with ``local_files_only``).
        templates: Prompt templates; the answer always comes last.
        prefix_reuse: Run a prompt prefix shared by several requests once and score the
            continuations on its key/value cache (used only where exact; see the module docstring).
        min_prefix_tokens: The shortest shared prefix worth a forward pass of its own.
        **lm_options: ``batch_tokens`` (padded tokens per forward pass), ``max_length``, ``device``,
            ``dtype``, ``tokenizer``, ``full_logits`` of :class:`~uae.teachers.causal_lm.CausalLM`
            (answer-only scoring is used whenever the backbone and head reproduce the logits).
    """

    def __init__(self, model_name_or_path: str, templates: PromptTemplates = PromptTemplates(), prefix_reuse: bool = True,
                 min_prefix_tokens: int = MIN_PREFIX_TOKENS, **lm_options: Any) -> None:
        super().__init__(model_name_or_path, **lm_options)
        self.templates = templates
        self.name = f"hf:{model_name_or_path}"
        self.prompts = PromptEncoder(self.tokenizer, templates, self.max_length)
        self.tokens_processed = 0
        self.min_prefix_tokens = int(min_prefix_tokens)
        self.reuse = ReuseStats()
        self._set_reuse(prefix_reuse)

    def describe(self) -> dict[str, Any]:
        """Teacher name, model, tokenizer, dtype, context length and prompt templates.

        Prefix reuse is not part of it: it gives the same NLLs, so a job may resume with it on or off.
        """
        return {
            "teacher": self.name,
            **super().describe(),
            "templates": {
                "with_passage": self.templates.with_passage,
                "without_passage": self.templates.without_passage,
            },
        }

    def stats(self) -> dict[str, Any]:
        """What prefix reuse did since the model was loaded."""
        return {"prefix_reuse": self.reuse.to_dict()}

    def encode(self, index: int, request: NLLRequest) -> EncodedRequest:
        """Token ids of one request (see :meth:`~uae.teachers.causal_lm.PromptEncoder.encode`)."""
        return self.prompts.encode(index, request)

    # ---- prefix reuse: on only where exact --------------------------------------------------

    def _set_reuse(self, wanted: bool) -> None:
        problem = TURNED_OFF if not wanted else self._reuse_problem()
        self.reuse.enabled, self.reuse.reason = problem is None, problem
        if problem is not None and wanted:
            logger.warning("%s: passage-prefix reuse is off, every request is scored without a cache: %s", self.name, problem)

    def _reuse_problem(self) -> str | None:
        """Why reusing a prefix cache would not give this model's uncached NLLs, or ``None``."""
        probe = self._probe_requests()
        group = PrefixGroup(tuple(range(len(probe))), min(item.answer_start for item in probe) - 1)
        try:
            reused = self._score_group(group, probe)
        except PrefixReuseUnsupported as err:
            return str(err)
        uncached = self._score_batch(probe)
        difference = max(abs(a - b) for a, b in zip(reused, uncached))
        tolerance = PROBE_TOLERANCE.get(self.dtype, HALF_PROBE_TOLERANCE)
        if not difference <= tolerance:
            return f"on a probe, reused and uncached NLLs differ by {difference:.2e} (> {tolerance:g})"
        return None

    def _probe_requests(self) -> list[EncodedRequest]:
        """Three requests sharing a prefix longer than a small sliding window, as token ids."""
        config = self.model.config
        window = getattr(config, "sliding_window", None)
        length = window + 8 if isinstance(window, int) and window < 256 else 32
        length = max(4, min(length, self.max_length - 8))
        generator = torch.Generator().manual_seed(0)
        vocab = int(config.vocab_size)
        prefix = self.bos + torch.randint(vocab, (length,), generator=generator).tolist()
        probe = []
        for index, tail in enumerate((5, 3, 7)):
            ids = prefix + torch.randint(vocab, (tail,), generator=generator).tolist()
            probe.append(EncodedRequest(index, ids, len(ids) - 2, False))
        return probe

    # ---- scoring ----------------------------------------------------------------------------

    def score(self, requests: Sequence[NLLRequest], progress: bool = False) -> list[NLLResult]:
        """Mean answer NLL (nats per answer token) of each request, in input order.

        Args:
            requests: What to score.
            progress: Show a tqdm progress bar over forward passes.

        Raises:
            ValueError: An answer has no tokens, or a question and its answer alone exceed the context.
        """
        encoded = [self.encode(i, request) for i, request in enumerate(requests)]
        groups, alone = self._plan(requests, encoded)
        self.tokens_processed += fed_tokens(encoded, groups)
        lengths = [encoded[i].input_length for i in alone]
        work: list[list[int] | PrefixGroup] = [[alone[j] for j in batch] for batch in token_budget_batches(lengths, self.batch_tokens)]
        work += groups
        if progress:
            from tqdm.auto import tqdm

            work = tqdm(work, desc=f"scoring with {self.name}", unit="pass")
        nlls: list[float | None] = [None] * len(encoded)
        for item in work:
            if isinstance(item, PrefixGroup):
                members, values = list(item.members), self._score_group(item, encoded)
            else:
                members, values = item, self._score_batch([encoded[i] for i in item])
            for index, nll in zip(members, values):
                nlls[index] = nll
        return [NLLResult(nll, len(item.ids) - item.answer_start, item.truncated)  # type: ignore[arg-type]
                for item, nll in zip(encoded, nlls)]

    def _plan(self, requests: Sequence[NLLRequest], encoded: list[EncodedRequest]) -> tuple[list[PrefixGroup], list[int]]:
        """The shared-prefix groups and the requests scored alone; counts them in :attr:`reuse`."""
        if not self.reuse.enabled:
            self.reuse.fallbacks[self.reuse.reason or "off"] += len(encoded)
            return [], list(range(len(encoded)))
        groups, alone = prefix_groups(requests, encoded, self.min_prefix_tokens)
        self.reuse.groups += len(groups)
        self.reuse.shared_requests += sum(len(group.members) for group in groups)
        self.reuse.alone_requests += len(alone)
        self.reuse.tokens_saved += sum((len(group.members) - 1) * group.prefix_length for group in groups)
        return groups, alone

    @torch.inference_mode()
    def _score_batch(self, batch: list[EncodedRequest]) -> list[float]:
        """Uncached: each request's whole ids in one right-padded batch."""
        input_ids, attention_mask = self.pad([item.ids[:-1] for item in batch])
        return self._mean_nlls(batch, input_ids, attention_mask, offset=0)

    @torch.inference_mode()
    def _score_group(self, group: PrefixGroup, encoded: Sequence[EncodedRequest]) -> list[float]:
        """Reused: the group's prefix once, then its continuations on copies of the prefix cache."""
        prefix_length = group.prefix_length
        members = [encoded[i] for i in group.members]
        cache = self.prefix_cache(members[0].ids[:prefix_length])
        # each row holds its copy of the prefix's keys and values plus its continuation
        batches = list(token_budget_batches([item.input_length for item in members], self.batch_tokens))
        nlls: list[float] = [0.0] * len(members)
        for number, batch in enumerate(batches):
            batch_cache = cache if number == len(batches) - 1 else copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(len(batch))
            rows = [members[j] for j in batch]
            input_ids, continuation_mask = self.pad([item.ids[prefix_length:-1] for item in rows])
            attention_mask = torch.cat([torch.ones((len(rows), prefix_length), dtype=torch.long), continuation_mask], dim=1)
            for j, nll in zip(batch, self._mean_nlls(rows, input_ids, attention_mask, prefix_length, batch_cache)):
                nlls[j] = nll
        return nlls

    def _mean_nlls(self, batch: list[EncodedRequest], input_ids: torch.Tensor, attention_mask: torch.Tensor, offset: int,
                   after: Any = None) -> list[float]:
        """Mean answer NLL per row; the ids of row ``r`` are ``batch[r].ids[offset:-1]``, after ``after``'s prefix."""
        rows, positions, targets = [], [], []
        for row, item in enumerate(batch):
            rows += [row] * (len(item.ids) - item.answer_start)
            positions += range(item.answer_start - 1 - offset, len(item.ids) - 1 - offset)
            targets += item.ids[item.answer_start :]
        row_index = torch.tensor(rows, device=self.device)
        log_probs = self.target_log_probs(
            input_ids.to(self.device),
            attention_mask.to(self.device),
            row_index,
            torch.tensor(positions, device=self.device),
            torch.tensor(targets, device=self.device),
            after,
        )
        totals = torch.zeros(len(batch), device=self.device).index_add_(0, row_index, -log_probs.to(torch.float32))
        counts = torch.bincount(row_index, minlength=len(batch))
        return (totals / counts).tolist()
