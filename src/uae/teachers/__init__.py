"""Teachers: language models that score gold answers with and without a passage.

``load_teacher(spec)`` builds one from a short spec string:

- ``dirichlet`` or ``dirichlet:mu=500``: the offline Dirichlet document LM (default)
- ``hf:<model-or-path>`` or ``hf:<model>,prefix_reuse=false,batch_tokens=8192``: a transformers causal LM
  (passage-prefix reuse on by default; see :mod:`uae.teachers.hf`)
- ``openai:<base_url>`` or ``openai:<base_url>,model=NAME,concurrency=16``: an OpenAI-compatible
  completions server (vLLM, SGLang, llama.cpp) through prompt log-probs
- ``vllm:<model-or-path>`` or ``vllm:<model>,tensor_parallel_size=2``: the vLLM engine
  (``pip install 'uae[vllm]'``), with automatic prefix caching

Options are checked: a name the teacher does not take (``dirichlet:foo=1``) is refused, and text
values are converted to the type of the parameter's default. A secret never goes into a spec (specs
are recorded in config.json, report.md, uae_training.json and model cards): ``api_key=`` is refused;
the ``openai:`` backends read ``OPENAI_API_KEY``, or the variable named by ``api_key_env=NAME``.

Modules: ``base`` (the protocol), ``prefix`` (which requests share a prompt prefix), ``causal_lm`` (the transformers causal LM that the hf teacher,
the LM re-rankers and the HF reader share), ``dirichlet``, ``hf``, ``openai`` (with the
OpenAI-compatible client the OpenAI reader uses too), ``vllm``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from uae.teachers.base import NLLRequest, NLLResult, PromptTemplates, Teacher
from uae.teachers.dirichlet import DirichletTeacher

__all__ = ["NLLRequest", "NLLResult", "PromptTemplates", "Teacher", "DirichletTeacher", "checked_options", "load_teacher", "parse_spec_options"]


SECRET_OPTIONS = frozenset({"api_key", "apikey", "key", "token", "password", "secret"})
"""Option names refused in spec strings, because specs are recorded."""


def parse_spec_options(text: str) -> dict[str, str]:
    """``key=value`` pairs of a spec's comma-separated tail (``mu=500``, ``model=NAME,concurrency=16``)."""
    options = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"teacher option {item!r} must look like key=value")
        if key.strip().lower() in SECRET_OPTIONS:
            raise ValueError(f"option {key.strip()}= in a spec would be written into the run's records (config.json, "
                             "report.md, uae_training.json); put the key in OPENAI_API_KEY, or in a variable named by "
                             "api_key_env=NAME")
        options[key.strip()] = value.strip()
    return options


def _split_model(kind: str, rest: str) -> tuple[str, dict[str, str]]:
    """``MODEL`` and the options of ``MODEL,key=value,...`` (a folder whose name holds a comma stays whole)."""
    if "," not in rest or Path(rest).exists():
        return rest, {}
    model, _, tail = rest.partition(",")
    return model, parse_spec_options(tail)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _literal(value: Any) -> Any:
    """A spec's text value as the number or boolean it spells, else the text."""
    if not isinstance(value, str):
        return value
    for convert in (int, float, _bool):
        try:
            return convert(value)
        except ValueError:
            continue
    return value


def checked_options(kind: str, constructors: Sequence[Callable[..., Any]], options: dict[str, Any],
                    skip: Sequence[str] = (), pass_unknown: bool = False) -> dict[str, Any]:
    """``options`` with each name checked against the constructors' parameters and text values converted.

    A value given as text (from a spec string) is converted to the type of the parameter's default
    (``bool``, ``int``, ``float``); other values pass as they are.

    Args:
        kind: The teacher's name, for messages.
        constructors: The functions whose parameters are the options' names.
        options: The options.
        skip: Parameters that are no options (the model, the templates).
        pass_unknown: Let other names through (converted as literals) for a callee that checks them itself.

    Raises:
        ValueError: an option no constructor takes, or a value that does not convert.
    """
    parameters: dict[str, inspect.Parameter] = {}
    for constructor in constructors:
        for name, parameter in inspect.signature(constructor).parameters.items():
            if name not in ("self", *skip) and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                parameters.setdefault(name, parameter)
    checked = {}
    for name, value in options.items():
        if name not in parameters and pass_unknown:
            checked[name] = _literal(value)
            continue
        if name not in parameters:
            raise ValueError(f"unknown option {name!r} for the {kind} teacher; it takes {', '.join(sorted(parameters))}")
        default = parameters[name].default
        if isinstance(value, str) and isinstance(default, (bool, int, float)) and default is not None:
            converter = _bool if isinstance(default, bool) else type(default)
            try:
                value = converter(value)
            except ValueError as err:
                raise ValueError(f"option {name}={value!r} of the {kind} teacher: expected a {type(default).__name__} ({err})") from None
        checked[name] = value
    return checked


def load_teacher(spec: str, templates: PromptTemplates | None = None, **options: Any) -> Teacher:
    """Build a teacher from ``spec`` (see the module docstring); ``options`` go to its constructor.

    Raises:
        ValueError: an unknown teacher, an option the teacher does not take, or a model that cannot score.
    """
    kind, _, rest = spec.partition(":")
    if kind == "dirichlet":
        parsed = checked_options("dirichlet", [DirichletTeacher.__init__], {**options, **parse_spec_options(rest)})
        return DirichletTeacher(**parsed)
    if kind == "hf":
        model, parsed = _split_model(kind, rest)
        if not model:
            raise ValueError("the hf teacher needs a model, e.g. hf:Qwen/Qwen2.5-0.5B or hf:/path/to/model")
        from uae.teachers.causal_lm import CausalLM
        from uae.teachers.hf import HFTeacher

        checked = checked_options("hf", [HFTeacher.__init__, CausalLM.__init__], {**options, **parsed},
                                  skip=("model_name_or_path", "templates"))
        return HFTeacher(model, templates=templates or PromptTemplates(), **checked)
    if kind == "openai":
        url, _, text = rest.partition(",")
        if not url:
            raise ValueError("the openai teacher needs a server, e.g. openai:http://localhost:8000/v1")
        from uae.teachers.openai import OpenAICompatTeacher

        checked = checked_options("openai", [OpenAICompatTeacher.__init__], {**options, **parse_spec_options(text)},
                                  skip=("base_url", "templates"))
        return OpenAICompatTeacher(url, templates=templates or PromptTemplates(), **checked)
    if kind == "vllm":
        model, parsed = _split_model(kind, rest)
        if not model:
            raise ValueError("the vllm teacher needs a model, e.g. vllm:Qwen/Qwen2.5-7B-Instruct")
        from uae.teachers.vllm import VLLMTeacher

        # engine options beyond the named ones go to vllm.LLM, which checks them itself
        checked = checked_options("vllm", [VLLMTeacher.__init__], {**options, **parsed}, skip=("model", "templates"),
                                  pass_unknown=True)
        return VLLMTeacher(model, templates=templates or PromptTemplates(), **checked)
    raise ValueError(
        f"unknown teacher {spec!r}; expected 'dirichlet', 'dirichlet:mu=N', 'hf:<model>', 'openai:<base_url>' or 'vllm:<model>'"
    )
