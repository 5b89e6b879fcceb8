"""A transformers causal LM and what the hf teacher, the LM re-rankers and the HF reader share of it.

- :class:`CausalLM` loads a model and its tokenizer (dtype, device, context length, BOS and pad
  ids) and exposes the two halves of its forward pass: :meth:`CausalLM.hidden_states` (the
  backbone, ``model.base_model``) and :meth:`CausalLM.lm_head` (the output embeddings, with
  Gemma-2-style soft-capping), so callers project onto the vocabulary only the positions they
  score. At load time one short input checks that backbone + head reproduce the model's logits;
  models that rescale their logits in other ways fall back to the full forward
  (``answer_only`` is then ``False``).
- :class:`PromptEncoder` turns an :class:`~uae.teachers.base.NLLRequest` into token ids: prompt
  and answer tokenised separately, BOS when the tokenizer has one, the passage cut from its end
  when the whole does not fit. The hf and vllm teachers and the judge re-ranker all use it, so
  they see exactly the same token ids.
- :func:`token_budget_batches` packs sequences, longest first, so that ``rows * longest`` stays
  within a budget of padded tokens.
- :class:`TextGenerator` is what RankGPT and the HF reader generate through;
  :class:`GreedyGenerator` is its implementation on a :class:`CausalLM` (tests pass scripted stubs).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from uae.errors import check_model_reference, model_load_error
from uae.teachers.base import NLLRequest, PromptTemplates

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
HEAD_ROWS = 1024
"""Positions projected onto the vocabulary at a time (bounds the logits' memory)."""


def resolve_dtype(dtype: str | None, device: str) -> torch.dtype:
    """The torch dtype of a name; ``None`` or ``auto``: bf16 on CUDA, fp32 elsewhere."""
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


def gather_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[row, targets[row]]`` for each row."""
    return torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)


def bos_ids(tokenizer: Any) -> list[int]:
    """``[bos_token_id]`` when the tokenizer has one, else ``[]``: what every prompt starts with."""
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def token_budget_batches(lengths: Sequence[int], batch_tokens: int) -> Iterator[list[int]]:
    """Indices, longest first, packed so that ``rows * longest`` stays within ``batch_tokens``.

    Ties keep input order; a sequence longer than the budget gets a batch of its own.
    """
    batch: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        longest = lengths[batch[0]] if batch else lengths[index]
        if batch and (len(batch) + 1) * longest > batch_tokens:
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def encode_prompt_answer(tokenizer: Any, prefix: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prefix`` and of ``answer``, tokenised separately (no special tokens).

    Whitespace that ends the prefix (``"Answer: "``) is moved to the front of the answer when the
    tokenizer merges it into the answer's first token (byte-level BPE: ``"ĠParis"``), so the
    answer is tokenised as the model would write it after the prompt. When the moved whitespace
    would be a token of its own, the whole text decides: if the tokenizer writes it as a token of
    its own in running text too (byte-level BPE before a digit, ``"Ġ"`` then ``"4"``), that token
    ends the prompt, as an OpenAI-compatible server tokenising the whole text has it; if it is an
    artefact of tokenising the answer alone (SentencePiece's dummy prefix), it is dropped.

    Returns:
        ``(prefix_ids, answer_ids)``; ``answer_ids`` is empty when the answer has no tokens.
    """
    stem = prefix.rstrip()
    gap = prefix[len(stem) :]
    prefix_ids = tokenizer(stem, add_special_tokens=False)["input_ids"]
    if not answer.strip():
        return prefix_ids, []
    answer_ids = tokenizer(gap + answer, add_special_tokens=False)["input_ids"]
    if gap and answer_ids and _is_blank(tokenizer, answer_ids[0]):
        joint = tokenizer(stem + gap + answer, add_special_tokens=False)["input_ids"]
        tail = joint[len(prefix_ids) :]
        if joint[: len(prefix_ids)] == prefix_ids and tail and _is_blank(tokenizer, tail[0]):
            blanks = next(i for i, token in enumerate(tail) if not _is_blank(tokenizer, token))
            return prefix_ids + tail[:blanks], tail[blanks:]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return prefix_ids, answer_ids


def _is_blank(tokenizer: Any, token: int) -> bool:
    return not tokenizer.decode([token]).strip()


@dataclass(frozen=True)
class EncodedRequest:
    """One request as token ids: ``ids[:answer_start]`` is the prompt, the rest the answer."""

    index: int
    ids: list[int]
    answer_start: int
    truncated: bool

    @property
    def input_length(self) -> int:
        """Tokens fed to the model: the last answer token is only ever a target."""
        return len(self.ids) - 1


class PromptEncoder:
    """Token ids of NLL requests for one tokenizer, prompt templates and context length.

    Args:
        tokenizer: A Hugging Face tokenizer.
        templates: The prompt templates; the answer comes last.
        max_length: Context length; ``ids`` may reach ``max_length + 1`` tokens, since the last
            answer token is only a target.
    """

    def __init__(self, tokenizer: Any, templates: PromptTemplates, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.templates = templates
        self.max_length = max_length
        self.bos = bos_ids(tokenizer)

    def encode(self, index: int, request: NLLRequest) -> EncodedRequest:
        """Token ids of one request, the passage cut from its end if the whole does not fit.

        Raises:
            ValueError: The answer has no tokens, or the question and answer alone do not fit.
        """
        prefix_ids, answer_ids = self._split(request, request.passage)
        if not answer_ids:
            raise ValueError(
                f"request {index} (question {request.question!r}): the answer {request.answer!r} has no tokens"
            )
        budget = self.max_length + 1 - len(self.bos) - len(answer_ids)
        truncated = False
        if len(prefix_ids) > budget:
            prefix_ids = self._truncate_passage(index, request, budget)
            truncated = True
        ids = self.bos + prefix_ids + answer_ids
        return EncodedRequest(index, ids, len(ids) - len(answer_ids), truncated)

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


class PrefixReuseUnsupported(RuntimeError):
    """A prefix's key/value cache cannot be reused exactly for this model; the message says why."""


REUSABLE_CACHE_LAYERS = ("DynamicLayer", "DynamicSlidingWindowLayer")
"""Cache layers that concatenate keys and values (sliding ones keep their window and offset), so
that ``deepcopy`` + ``batch_repeat_interleave`` + a right-padded continuation gives exact results."""


def cache_keyword(module: Any) -> str | None:
    """The keyword ``module.forward`` takes a key/value cache under: ``cache`` (transformers >= 5.x),
    ``past_key_values`` (before), or ``None``."""
    parameters = inspect.signature(module.forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def check_reusable_cache(cache: Any) -> None:
    """Raise :class:`PrefixReuseUnsupported` unless every layer of ``cache`` is one of :data:`REUSABLE_CACHE_LAYERS`."""
    layers = getattr(cache, "layers", None)
    if cache is None or layers is None:
        kind = "no cache" if cache is None else f"a {type(cache).__name__} without per-layer classes"
        raise PrefixReuseUnsupported(f"the model returned {kind} (transformers >= 4.56 builds reusable ones)")
    if not hasattr(cache, "batch_repeat_interleave"):
        raise PrefixReuseUnsupported(f"its {type(cache).__name__} cannot be repeated over a batch")
    kinds = sorted({type(layer).__name__ for layer in layers} - set(REUSABLE_CACHE_LAYERS))
    if kinds:
        raise PrefixReuseUnsupported(f"its cache holds {', '.join(kinds)} layers (only full and sliding-window "
                                     f"attention layers are reused exactly)")


def load_causal_lm(model_name_or_path: str, dtype: torch.dtype) -> Any:
    """``AutoModelForCausalLM.from_pretrained``, refusing a checkpoint that is no causal LM or lacks weights.

    A checkpoint without trained LM-head weights (an encoder such as the packaged MiniLM) would
    load with a randomly initialised head and score noise, so any weight the checkpoint lacks is
    an error that names it.

    Raises:
        ValueError: transformers has no causal LM for the checkpoint's type, or weights are missing.
    """
    from transformers import AutoModelForCausalLM

    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            model_name_or_path, local_files_only=Path(model_name_or_path).is_dir(), output_loading_info=True,
            **_dtype_kwarg(dtype),
        )
    except ValueError as err:
        if "Unrecognized configuration class" not in str(err):
            raise
        raise ValueError(f"{model_name_or_path} is not a causal language model that transformers can load "
                         f"(AutoModelForCausalLM: {str(err).splitlines()[0]})") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ValueError(
            f"{model_name_or_path} is not a complete causal language model: {len(missing)} weight(s) are missing from the "
            f"checkpoint and would be random ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); "
            f"is it an encoder (architectures {getattr(model.config, 'architectures', None)})? A teacher needs a "
            f"decoder-only LM such as Qwen2, Llama or GPT-2"
        )
    return model


class CausalLM:
    """A transformers causal LM (GPT-2, Llama, Qwen2, Mistral, ...) and its tokenizer.

    Args:
        model_name_or_path: A hub model name or a local folder (loaded with ``local_files_only``).
        batch_tokens: Budget of padded tokens per forward pass.
        max_length: Context length; defaults to the config's ``max_position_embeddings``.
        device: ``cuda``, ``cpu``, ...; defaults to CUDA when available.
        dtype: ``bfloat16``, ``float16`` or ``float32``; defaults to bf16 on CUDA, fp32 on CPU.
        tokenizer: A separate tokenizer name or folder; defaults to the model's.
        full_logits: Compute logits at every position, as a plain forward does (for comparison
            only; backbone + head is used whenever it reproduces the logits).

    Attributes:
        bos: ``[bos_token_id]`` or ``[]``, what every prompt starts with.
        pad_id: The id right padding uses (pad, else EOS, else 0); masked out, never scored.
        answer_only: Whether backbone + head reproduce the logits, so that only the scored
            positions are projected onto the vocabulary.
    """

    def __init__(
        self,
        model_name_or_path: str,
        batch_tokens: int = 4096,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        tokenizer: str | None = None,
        full_logits: bool = False,
    ) -> None:
        from transformers import AutoTokenizer

        self.model_name_or_path = model_name_or_path
        self.tokenizer_name_or_path = tokenizer or model_name_or_path
        self.batch_tokens = int(batch_tokens)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_dtype(dtype, self.device)
        check_model_reference(model_name_or_path, "model")
        check_model_reference(self.tokenizer_name_or_path, "tokenizer")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                self.tokenizer_name_or_path, local_files_only=Path(self.tokenizer_name_or_path).is_dir()
            )
        except OSError as err:
            raise model_load_error(self.tokenizer_name_or_path, err, "tokenizer") from None
        try:
            self.model = load_causal_lm(model_name_or_path, self.dtype)
        except OSError as err:
            raise model_load_error(model_name_or_path, err, "model") from None
        self.model.to(self.device).eval()
        self.max_length = int(max_length) if max_length is not None else self._context_length()
        self.bos = bos_ids(self.tokenizer)
        self.pad_id = next(
            (i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id) if i is not None), 0
        )
        self._refuse_non_causal()
        self.answer_only = not full_logits and self._head_reproduces_logits()
        self.cache_argument = cache_keyword(self.model.base_model)

    def _context_length(self) -> int:
        length = getattr(self.model.config, "max_position_embeddings", None)
        if length is None:
            raise ValueError(f"{self.model_name_or_path}: the config has no max_position_embeddings; pass max_length")
        return int(length)

    def describe(self) -> dict[str, Any]:
        """Model, tokenizer, dtype and context length."""
        return {
            "model": self.model_name_or_path,
            "tokenizer": self.tokenizer_name_or_path,
            "dtype": str(self.dtype).removeprefix("torch."),
            "max_length": self.max_length,
        }

    # ---- the forward pass in two halves ---------------------------------------------------------

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, after: Any = None) -> torch.Tensor:
        """The backbone's last hidden states, ``(rows, positions, hidden)``.

        Args:
            input_ids: Right-padded token ids.
            attention_mask: Their mask; with ``after``, it spans the cached prefix too.
            after: A key/value cache of a prefix (:meth:`prefix_cache`, repeated to the rows); the
                ids then continue it, at positions ``prefix + 0, 1, ...``. The cache is extended in place.
        """
        output = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask, **self._cache_kwargs(input_ids, after))
        return output.last_hidden_state

    def _cache_kwargs(self, input_ids: torch.Tensor, after: Any) -> dict[str, Any]:
        """``use_cache=False``, or the cache under the keyword this transformers version takes, with explicit positions."""
        if after is None:
            return {"use_cache": False}
        if self.cache_argument is None:
            raise PrefixReuseUnsupported("the model's forward takes no key/value cache")
        start = after.get_seq_length()
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device).expand(input_ids.shape)
        return {self.cache_argument: after, "position_ids": positions, "use_cache": True}

    @torch.inference_mode()
    def prefix_cache(self, ids: Sequence[int]) -> Any:
        """The key/value cache of one prefix (batch 1), after checking that every layer can be reused exactly.

        Raises:
            PrefixReuseUnsupported: the cache holds layers other than full or sliding-window
                attention (linear attention, state-space or quantised layers), or none at all.
        """
        if self.cache_argument is None:
            raise PrefixReuseUnsupported("the model's forward takes no key/value cache")
        input_ids = torch.tensor([list(ids)], device=self.device)
        output = self.model.base_model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=True)
        cache = getattr(output, "cache", None) if self.cache_argument == "cache" else getattr(output, "past_key_values", None)
        check_reusable_cache(cache)
        return cache

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on some hidden states, in float32, with Gemma-2-style soft-capping if set."""
        logits = self.model.get_output_embeddings()(hidden).float()
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def pad(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask)`` of ``sequences``, right-padded with :attr:`pad_id`, on the CPU."""
        width = max(len(ids) for ids in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(list(ids))
            attention_mask[row, : len(ids)] = 1
        return input_ids, attention_mask

    def target_log_probs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor,
                         positions: torch.Tensor, targets: torch.Tensor, after: Any = None) -> torch.Tensor:
        """``log p(targets)`` predicted at ``(rows, positions)``; the head sees those positions only, when it can.

        ``after``: a prefix cache the ids continue (see :meth:`hidden_states`); ``positions`` then
        count from the first continuation token.
        """
        if self.answer_only:
            hidden = self.hidden_states(input_ids, attention_mask, after)[rows, positions]
            spans = [slice(i, i + HEAD_ROWS) for i in range(0, len(hidden), HEAD_ROWS)]
            return torch.cat([gather_log_probs(self.lm_head(hidden[span]), targets[span]) for span in spans])
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, **self._cache_kwargs(input_ids, after)).logits
        return gather_log_probs(logits[rows, positions].float(), targets)

    @torch.inference_mode()
    def next_token_log_probs(self, prompts: Sequence[list[int]], candidates: Sequence[int]) -> torch.Tensor:
        """``log p(candidate | prompt)`` of the token after each prompt; the head runs at one position per prompt.

        Args:
            prompts: Token ids of each prompt (BOS included where the model wants one).
            candidates: Token ids whose next-token log-probabilities are wanted.

        Returns:
            A float32 tensor of shape ``(len(prompts), len(candidates))``, on the CPU.
        """
        out = torch.empty((len(prompts), len(candidates)), dtype=torch.float32)
        wanted = torch.tensor(list(candidates), device=self.device)
        for batch in token_budget_batches([len(p) for p in prompts], self.batch_tokens):
            input_ids, attention_mask = self.pad([prompts[i] for i in batch])
            last = torch.tensor([len(prompts[i]) - 1 for i in batch], device=self.device)
            logits = self._last_logits(input_ids.to(self.device), attention_mask.to(self.device), last)
            out[batch] = torch.log_softmax(logits, dim=-1)[:, wanted].cpu()
        return out

    def _last_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Float32 logits at position ``last[row]`` of each row (right padding, so pads never leak in)."""
        rows = torch.arange(len(last), device=last.device)
        if self.answer_only:
            return self.lm_head(self.hidden_states(input_ids, attention_mask)[rows, last])
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        return logits[rows, last].float()

    @torch.inference_mode()
    def _refuse_non_causal(self) -> None:
        """Refuse a model whose prediction at a position depends on later tokens (an encoder loaded as a causal LM)."""
        vocab = int(self.model.config.vocab_size)
        ids = (torch.arange(8, device=self.device)[None] * 7 + 3) % vocab
        changed = ids.clone()
        changed[0, 4:] = (changed[0, 4:] + 1) % vocab
        first, second = (self.model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False).logits[0, :4].float()
                         for x in (ids, changed))
        # a causal model computes the first positions from the same inputs with the same shapes: equal up to rounding
        tolerance = 1e-5 if self.dtype == torch.float32 else 2e-2
        if float((first - second).abs().max()) > tolerance * float(first.abs().max()):
            raise ValueError(
                f"{self.model_name_or_path} ({type(self.model).__name__}) is not a causal language model: its prediction at "
                f"a position depends on later tokens (an encoder such as BERT); a teacher needs a decoder-only LM "
                f"such as Qwen2, Llama or GPT-2"
            )

    @torch.inference_mode()
    def _head_reproduces_logits(self) -> bool:
        """Whether backbone + LM head give the model's own logits (not so when a model rescales them)."""
        if self.model.base_model is self.model or self.model.get_output_embeddings() is None:
            return False
        input_ids = torch.arange(8, device=self.device)[None] % self.model.config.vocab_size
        attention_mask = torch.ones_like(input_ids)
        expected = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[0].float()
        try:
            actual = self.lm_head(self.hidden_states(input_ids, attention_mask)[0])
        except (TypeError, AttributeError):
            return False
        tolerance = 1e-2 * expected.abs().max().item()  # loose for bf16; a rescaling is far larger
        return actual.shape == expected.shape and torch.allclose(actual, expected, rtol=1e-2, atol=tolerance)


# ---- generation -----------------------------------------------------------------------------


class TextGenerator(Protocol):
    """What RankGPT and the HF reader generate through: token counting, truncation and greedy generation."""

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


class GreedyGenerator:
    """Greedy generation with a :class:`CausalLM` (an ``HFTeacher`` is one).

    Args:
        lm: The model to generate with.
        chat_template: Wrap prompts in the tokenizer's chat template as one user turn;
            ``None`` does so when the tokenizer has one (instruction-tuned models).
    """

    def __init__(self, lm: CausalLM, chat_template: bool | None = None) -> None:
        self.lm = lm
        self.tokenizer = lm.tokenizer
        self.max_length = lm.max_length
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.chat_template = has_template if chat_template is None else chat_template and has_template

    def _ids(self, prompt: str) -> list[int]:
        if self.chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.lm.bos + self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

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
        ids = torch.tensor([self._ids(prompt)], device=self.lm.device)
        output = self.lm.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=self.lm.pad_id,
        )
        return self.tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
