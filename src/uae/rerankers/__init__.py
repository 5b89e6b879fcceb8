"""Re-rankers over a first stage's top-k: the LLM baselines UAE is compared with.

``load_reranker("METHOD:BACKEND")`` builds one; the backend is any teacher spec that
:func:`uae.teachers.load_teacher` accepts:

- ``upr:hf:<model>``     UPR, mean log-likelihood of the question given the passage (any teacher)
- ``judge:hf:<model>``   pointwise judge, log p(Yes) - log p(No) (fast path on ``hf:``; NLLs otherwise)
- ``rankgpt:hf:<model>`` listwise permutation generation, sliding window (it generates: ``hf:``, or
  ``rankgpt:openai:<base_url>[,chat=true,context=N,tokenizer=NAME]`` for a completions or chat endpoint)
- ``oracle:dirichlet``   the teacher with the gold answer (``oracle:hf:<model>`` too): an upper bound

Each method lives in its own module (``upr``, ``judge``, ``rankgpt``, ``oracle``; ``base`` holds the
re-ranker protocol, :meth:`Reranker.score`, and the re-ranking of a first-stage run) and is
imported only when asked for. The model-level pieces the LM methods need (next-token log-probs,
greedy generation) are :mod:`uae.teachers.causal_lm`'s.
"""

from __future__ import annotations

from typing import Any

from uae.rerankers.base import Reranker, latency_summary, rerank_run, run_to_hits, strictly_decreasing

__all__ = ["Reranker", "latency_summary", "load_reranker", "rerank_run", "run_to_hits", "strictly_decreasing", "METHODS"]

METHODS = ("upr", "judge", "rankgpt", "oracle")


def load_reranker(spec: str, backend_options: dict[str, Any] | None = None, **options: Any) -> Reranker:
    """Build a re-ranker from ``METHOD:BACKEND``.

    Args:
        spec: e.g. ``upr:hf:/path/to/model``, ``rankgpt:hf:Qwen/Qwen2.5-0.5B-Instruct``, ``oracle:dirichlet``.
        backend_options: Keyword arguments of the backend teacher (``batch_tokens``, ``dtype``, ...).
        **options: Keyword arguments of the re-ranker (``window``, ``step``, ``aggregate``, ...).

    Raises:
        ValueError: Unknown method, missing backend, or a backend the method cannot use.
    """
    from uae.teachers import load_teacher

    method, _, backend = spec.partition(":")
    backend_options = dict(backend_options or {})
    if method not in METHODS:
        raise ValueError(f"unknown re-ranker {spec!r}; expected METHOD:BACKEND with METHOD one of {METHODS}")
    if method == "oracle":
        from uae.rerankers.oracle import OracleReranker

        reranker: Reranker = OracleReranker(load_teacher(backend or "dirichlet", **backend_options), **options)
    elif not backend:
        raise ValueError(f"re-ranker {spec!r} needs a backend, e.g. {method}:hf:/path/to/model")
    elif method == "upr":
        from uae.rerankers.upr import UPR_TEMPLATES, UPRReranker

        reranker = UPRReranker(load_teacher(backend, templates=UPR_TEMPLATES, **backend_options), **options)
    elif method == "judge":
        from uae.rerankers.judge import JUDGE_TEMPLATES, JudgeReranker

        reranker = JudgeReranker(load_teacher(backend, templates=JUDGE_TEMPLATES, **backend_options), **options)
    else:
        reranker = _load_rankgpt(backend, backend_options, options, load_teacher)
    reranker.spec = spec
    return reranker


def _load_rankgpt(backend: str, backend_options: dict[str, Any], options: dict[str, Any], load_teacher) -> Reranker:
    from uae.rerankers.rankgpt import RankGPTReranker
    from uae.teachers.causal_lm import CausalLM, GreedyGenerator

    if backend.startswith("openai:"):
        return RankGPTReranker(_openai_generator(backend, backend_options), **options)
    if not backend.startswith("hf:"):
        raise ValueError(f"rankgpt generates text, so it needs a transformers backend (rankgpt:hf:<model>) or an "
                         f"OpenAI-compatible server (rankgpt:openai:<base_url>), got {backend!r}")
    chat_template = options.pop("chat_template", None)
    teacher = load_teacher(backend, **backend_options)
    if not isinstance(teacher, CausalLM):
        raise ValueError(f"rankgpt needs a transformers backend, got {type(teacher).__name__}")
    return RankGPTReranker(GreedyGenerator(teacher, chat_template=chat_template), **options)


def _openai_generator(backend: str, backend_options: dict[str, Any]):
    """The generator of ``openai:<base_url>,key=value,...`` (options checked as the teacher's are)."""
    from uae.teachers import checked_options, parse_spec_options
    from uae.teachers.openai import OpenAIClient, OpenAIGenerator

    url, _, text = backend.removeprefix("openai:").partition(",")
    checked = checked_options("openai generator", [OpenAIGenerator.__init__, OpenAIClient.__init__],
                              {**backend_options, **parse_spec_options(text)}, skip=("base_url",))
    return OpenAIGenerator(url, **checked)
