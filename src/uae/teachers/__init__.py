"""Teachers: language models that score gold answers with and without a passage.

``load_teacher(spec)`` builds one from a short spec string:

- ``dirichlet`` or ``dirichlet:mu=500``: the offline Dirichlet document LM (default)
- ``hf:<model-or-path>``: a transformers causal LM
- ``openai:<base_url>`` or ``openai:<base_url>,model=NAME,concurrency=16``: an OpenAI-compatible
  completions server (vLLM, SGLang, llama.cpp) through prompt log-probs
- ``vllm:<model-or-path>``: the vLLM engine (``pip install 'uae[vllm]'``)

Modules: ``base`` (the protocol), ``causal_lm`` (the transformers causal LM that the hf teacher,
the LM re-rankers and the HF reader share), ``dirichlet``, ``hf``, ``openai`` (with the
OpenAI-compatible client the OpenAI reader uses too), ``vllm``.
"""

from __future__ import annotations

from typing import Any

from uae.teachers.base import NLLRequest, NLLResult, PromptTemplates, Teacher
from uae.teachers.dirichlet import DirichletTeacher

__all__ = ["NLLRequest", "NLLResult", "PromptTemplates", "Teacher", "DirichletTeacher", "load_teacher", "parse_spec_options"]


def parse_spec_options(text: str) -> dict[str, str]:
    """``key=value`` pairs of a spec's comma-separated tail (``mu=500``, ``model=NAME,concurrency=16``)."""
    options = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"teacher option {item!r} must look like key=value")
        options[key.strip()] = value.strip()
    return options


def load_teacher(spec: str, templates: PromptTemplates | None = None, **options: Any) -> Teacher:
    """Build a teacher from ``spec`` (see the module docstring); ``options`` go to its constructor."""
    kind, _, rest = spec.partition(":")
    if kind == "dirichlet":
        parsed = parse_spec_options(rest)
        return DirichletTeacher(mu=float(parsed.get("mu", options.get("mu", 1000.0))))
    if kind == "hf":
        if not rest:
            raise ValueError("the hf teacher needs a model, e.g. hf:Qwen/Qwen2.5-0.5B or hf:/path/to/model")
        from uae.teachers.hf import HFTeacher

        return HFTeacher(rest, templates=templates or PromptTemplates(), **options)
    if kind == "openai":
        url, _, text = rest.partition(",")
        if not url:
            raise ValueError("the openai teacher needs a server, e.g. openai:http://localhost:8000/v1")
        from uae.teachers.openai import OpenAICompatTeacher

        return OpenAICompatTeacher(url, templates=templates or PromptTemplates(), **{**parse_spec_options(text), **options})
    if kind == "vllm":
        if not rest:
            raise ValueError("the vllm teacher needs a model, e.g. vllm:Qwen/Qwen2.5-7B-Instruct")
        from uae.teachers.vllm import VLLMTeacher

        return VLLMTeacher(rest, templates=templates or PromptTemplates(), **options)
    raise ValueError(
        f"unknown teacher {spec!r}; expected 'dirichlet', 'dirichlet:mu=N', 'hf:<model>', 'openai:<base_url>' or 'vllm:<model>'"
    )
