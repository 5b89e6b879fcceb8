"""The vLLM teacher: answer NLLs from vLLM's offline engine via ``prompt_logprobs``.

vLLM batches continuously and pages its KV cache, so on a GPU it labels several times faster
than a transformers forward loop. The prompt is tokenised here, exactly as the ``hf`` teacher
does it (prompt and answer separately, BOS when the tokenizer has one, the passage cut from its
end when the whole does not fit), and sent as token ids, so the answer's positions are known
without any offset arithmetic; vLLM returns, for every prompt position, the log-prob of the
prompt's own token (``SamplingParams(prompt_logprobs=1)``) and generates one token.

Prefix caching. The engine starts with ``enable_prefix_caching=True``, and the requests that
share a passage are sent so that the passage is computed once: each group's first request in one
``generate`` call, the others in the next (:meth:`VLLMTeacher.waves`); the labeling planner already
hands them over side by side.

vLLM is an optional dependency: ``pip install 'uae[vllm]'`` (Linux with a CUDA GPU). Spec:
``vllm:<model-or-path>``, with engine options passed through (``tensor_parallel_size``,
``gpu_memory_utilization``, ``max_model_len``, ``dtype``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from uae.errors import import_optional
from uae.teachers.base import NLLRequest, NLLResult, PromptTemplates, Teacher
from uae.teachers.causal_lm import PromptEncoder
from uae.teachers.prefix import sharing_groups

INSTALL_HINT = "the vllm teacher needs vLLM: pip install 'uae[vllm]' (Linux with a CUDA GPU)"
PREFIX_WINDOW = 64
"""Sharing groups sent per pair of ``generate`` calls (their prefixes stay in vLLM's cache in between)."""


def import_vllm() -> Any:
    """The ``vllm`` module, or an ImportError (:class:`~uae.errors.MissingExtra`) that says how to install it."""
    return import_optional("vllm", INSTALL_HINT)


class VLLMTeacher(Teacher):
    """Answer NLLs from a vLLM engine.

    Args:
        model: A hub model name or a local folder.
        templates: Prompt templates; the answer always comes last.
        max_model_len: Context length of the engine; defaults to the model's.
        dtype: ``auto``, ``bfloat16``, ``float16``, ...
        tensor_parallel_size: GPUs per model replica.
        gpu_memory_utilization: Share of GPU memory vLLM may use.
        tokenizer: A separate tokenizer name or folder; defaults to the model's.
        enable_prefix_caching: vLLM's automatic prefix caching, so that the requests of one passage
            compute it once (on by default; the NLLs are the same).
        prefix_window: Sharing groups per pair of ``generate`` calls (see :meth:`waves`).
        **engine_options: Further ``vllm.LLM`` arguments.
    """

    def __init__(
        self,
        model: str,
        templates: PromptTemplates = PromptTemplates(),
        max_model_len: int | None = None,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        tokenizer: str | None = None,
        enable_prefix_caching: bool = True,
        prefix_window: int = PREFIX_WINDOW,
        **engine_options: Any,
    ) -> None:
        vllm = import_vllm()
        self.prefix_window = int(prefix_window)
        self.model_name_or_path = model
        self.templates = templates
        self.name = f"vllm:{model}"
        self.tokens_processed = 0
        self.llm = vllm.LLM(
            model=model,
            tokenizer=tokenizer,
            dtype=dtype,
            tensor_parallel_size=int(tensor_parallel_size),
            gpu_memory_utilization=float(gpu_memory_utilization),
            max_model_len=None if max_model_len is None else int(max_model_len),
            enable_prefix_caching=bool(enable_prefix_caching),
            **engine_options,
        )
        self._sampling = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        self.tokenizer = self.llm.get_tokenizer()
        engine = self.llm.llm_engine
        model_config = getattr(engine, "model_config", None) or engine.vllm_config.model_config
        self.context_length = int(model_config.max_model_len)
        # The prompt encoder lets ids reach max_length + 1; vLLM needs ids + 1 generated <= context.
        self.max_length = self.context_length - 2
        # The hf teacher's tokenisation, so that both backends score the very same tokens.
        self.prompts = PromptEncoder(self.tokenizer, templates, self.max_length)

    def describe(self) -> dict[str, Any]:
        """Teacher name, model, context length and prompt templates."""
        return {
            "teacher": self.name,
            "model": self.model_name_or_path,
            "backend": "vllm",
            "max_model_len": self.context_length,
            "templates": {"with_passage": self.templates.with_passage, "without_passage": self.templates.without_passage},
        }

    def score(self, requests: Sequence[NLLRequest]) -> list[NLLResult]:
        """Mean answer NLL (nats per answer token) of each request, in input order.

        Raises:
            ValueError: An answer has no tokens, or a question and its answer alone exceed the context.
        """
        encoded = [self.prompts.encode(i, request) for i, request in enumerate(requests)]
        results: list[NLLResult | None] = [None] * len(encoded)
        for wave in self.waves(requests):
            for index, output in zip(wave, self._generate([encoded[i].ids for i in wave])):
                item = encoded[index]
                positions = range(item.answer_start, len(item.ids))
                log_probs = [output.prompt_logprobs[p][item.ids[p]].logprob for p in positions]
                results[index] = NLLResult(-sum(log_probs) / len(log_probs), len(log_probs), item.truncated)
                self.tokens_processed += len(item.ids)
        return results  # type: ignore[return-value]

    def waves(self, requests: Sequence[NLLRequest]) -> list[list[int]]:
        """The ``generate`` calls, as request indices: per window of sharing groups, their first requests, then the rest.

        vLLM's automatic prefix caching reuses the blocks of a prompt once they are computed, so a
        group's first request (its passage) goes in one call and the others in the next, within a
        window of :attr:`prefix_window` groups whose prefixes the cache easily holds.
        """
        groups = sharing_groups(requests)
        waves = []
        for start in range(0, len(groups), self.prefix_window):
            window = groups[start : start + self.prefix_window]
            waves.append([group[0] for group in window])
            if followers := [i for group in window for i in group[1:]]:
                waves.append(followers)
        return waves

    def _generate(self, prompts: list[list[int]]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        return self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], self._sampling, use_tqdm=False)
