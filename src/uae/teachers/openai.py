"""The OpenAI-compatible teacher: answer NLLs from the prompt log-probs of a completions server.

Any server with ``POST {base_url}/completions`` that can return the log-probs of the *prompt*
tokens can score answers: vLLM, SGLang, llama.cpp's server, or OpenAI's legacy completions.
The whole text ``prefix + answer`` is sent as the prompt and nothing is generated (one token at
most); the answer's tokens are then found in the returned tokens by character offset. Two
request styles are supported (``mode``):

- ``echo`` (default): ``echo=True, logprobs=1, max_tokens=1``; the reply carries ``tokens``,
  ``token_logprobs`` and ``text_offset`` for the prompt followed by the generated token, and
  ``usage.prompt_tokens`` says where the prompt ends.
- ``prompt_logprobs``: vLLM's extension ``prompt_logprobs=1``; the reply carries one
  ``{token_id: {logprob, rank, decoded_token}}`` entry per prompt token.

Finding the answer. Servers count offsets differently at the *start* of the text: vLLM adds
the length of a decoded BOS token (``"<s>"``) to every offset, OpenAI does not. The end of the
prompt is unambiguous, so the boundary is anchored there: a prompt token belongs to the
answer when it starts no more than ``len(gap + answer)`` characters before the prompt's end,
``gap`` being the whitespace between ``"Answer:"`` and the answer (which byte-level BPE merges
into the answer's first token). Whitespace-only tokens at the head of the answer are dropped,
as the ``hf`` teacher drops them. A token that straddles the boundary counts as prompt.

Order. Requests that share a prompt prefix (the same passage; :func:`uae.teachers.prefix.sharing_key`)
are sent as a group: its first request alone, the others as soon as it is answered, ahead of the
next group's, so a server with automatic prefix caching (vLLM, SGLang, llama.cpp) computes each
passage once. The labeling planner already hands them over side by side.

Reliability. Requests run ``concurrency`` at a time on a thread pool sharing one HTTP
connection pool; each has a timeout, and 5xx / 429 replies and connection errors are retried
with exponential backoff (``backoff * 2**attempt``, jittered, capped at ``max_backoff``).
A prompt longer than the server's context (HTTP 400 naming the context length) is retried
with the passage cut from its end, and the result is marked ``truncated``, as with ``hf``.

The HTTP side (connection pool, retries, model discovery, the cut-and-retry loop) is
:class:`OpenAIClient`, which the OpenAI reader (:mod:`uae.evaluation.readers`) uses too.

The server address is not part of :meth:`describe`, so a resumed job may point at another
server that serves the same model.
"""

from __future__ import annotations

import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from uae.errors import ContextOverflow, PromptLogprobsUnavailable, TeacherServerError
from uae.teachers.base import NLLRequest, NLLResult, PromptTemplates, Teacher
from uae.teachers.prefix import sharing_groups

MODES = ("echo", "prompt_logprobs")
MAX_CUTS = 12
"""How often a prompt is cut and sent again before the request is given up."""
T = TypeVar("T")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_CONTEXT_ERROR = re.compile(r"context length|context window|too long|maximum context", re.IGNORECASE)
_LOGPROBS_ERROR = re.compile(r"echo|logprob", re.IGNORECASE)
_MAX_CONTEXT = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_PROMPT_TOKENS = re.compile(r"(\d+) in the messages|has (\d+) input tokens|(\d+) tokens in the prompt", re.IGNORECASE)
_REQUESTED = re.compile(r"requested (\d+) tokens|has (\d+) input tokens|(\d+) in the messages", re.IGNORECASE)


@dataclass(frozen=True)
class PromptToken:
    """One prompt token as the server reports it: its text, start offset and log-prob."""

    text: str
    offset: int
    logprob: float | None


def answer_token_indices(tokens: Sequence[PromptToken], answer_chars: int) -> list[int]:
    """Positions of the answer's tokens: those starting within ``answer_chars`` of the prompt's end.

    Args:
        tokens: The prompt's tokens only (no generated token), in order.
        answer_chars: ``len(gap + answer)``: characters from the end of the prompt stem to the end.

    Returns:
        Indices into ``tokens``, leading whitespace-only tokens excluded.
    """
    if not tokens:
        return []
    end = tokens[-1].offset + len(tokens[-1].text)
    indices = [i for i, token in enumerate(tokens) if end - token.offset <= answer_chars]
    while indices and not tokens[indices[0]].text.strip():
        indices.pop(0)
    return indices


def parse_echo_choice(body: dict[str, Any], max_tokens: int) -> list[PromptToken]:
    """The prompt tokens of an ``echo=True, logprobs=N`` reply (OpenAI completions format).

    Raises:
        PromptLogprobsUnavailable: The reply has no token log-probs, or did not echo the prompt.
    """
    choice = _first_choice(body)
    logprobs = choice.get("logprobs") or {}
    tokens, values, offsets = (logprobs.get(key) for key in ("tokens", "token_logprobs", "text_offset"))
    if not tokens or values is None or offsets is None:
        raise PromptLogprobsUnavailable("the reply has no logprobs.tokens / token_logprobs / text_offset")
    prompt_count = _prompt_token_count(body, choice, len(tokens), max_tokens)
    if prompt_count > len(tokens) or not any(v is not None for v in values[:prompt_count]):
        raise PromptLogprobsUnavailable("the reply did not echo the prompt's tokens with their log-probs (echo=True ignored)")
    return [PromptToken(tokens[i], offsets[i], values[i]) for i in range(prompt_count)]


def parse_prompt_logprobs_choice(body: dict[str, Any]) -> list[PromptToken]:
    """The prompt tokens of a vLLM ``prompt_logprobs=1`` reply; offsets are cumulative token lengths.

    Each entry maps token ids to ``{logprob, rank, decoded_token}`` and holds the prompt's own
    token plus the top-1; when they differ, the prompt's token is the one not ranked first.

    Raises:
        PromptLogprobsUnavailable: The reply has no ``prompt_logprobs``.
    """
    entries = _first_choice(body).get("prompt_logprobs")
    if not entries:
        raise PromptLogprobsUnavailable("the reply has no prompt_logprobs")
    tokens, offset = [], 0
    for entry in entries:
        text, value = ("", None) if not entry else _actual_token(entry)
        tokens.append(PromptToken(text, offset, value))
        offset += len(text)
    return tokens


def _actual_token(entry: dict[str, dict[str, Any]]) -> tuple[str, float]:
    candidates = list(entry.values())
    if len(candidates) > 1:
        candidates = [c for c in candidates if c.get("rank") != 1] or candidates
    chosen = candidates[0]
    return chosen.get("decoded_token") or "", float(chosen["logprob"])


def _first_choice(body: dict[str, Any]) -> dict[str, Any]:
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise PromptLogprobsUnavailable(f"the reply has no choices: {str(body)[:200]}")
    return choices[0]


def _prompt_token_count(body: dict[str, Any], choice: dict[str, Any], n_tokens: int, max_tokens: int) -> int:
    usage = body.get("usage") or {}
    if isinstance(usage.get("prompt_tokens"), int):
        return usage["prompt_tokens"]
    if max_tokens == 0:
        return n_tokens
    if choice.get("finish_reason") == "length":
        return n_tokens - max_tokens
    raise PromptLogprobsUnavailable("the reply has no usage.prompt_tokens, so the prompt's end is unknown (try max_tokens=0)")


def error_message(response: httpx.Response) -> str:
    """The message of an error reply (OpenAI's ``error.message``, or ``message`` / ``detail``), else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)[:500]


def _served_prompt_tokens(message: str, max_tokens: int) -> int | None:
    """The prompt's length in the server's tokens, as a too-long refusal states it (``None`` when it does not)."""
    stated = _PROMPT_TOKENS.search(message)
    if stated:
        return int(next(g for g in stated.groups() if g))
    requested = _REQUESTED.search(message)
    return int(next(g for g in requested.groups() if g)) - max_tokens if requested else None


def is_context_error(message: str) -> bool:
    """Whether a server's 400 message says the prompt exceeds the model's context."""
    return bool(_CONTEXT_ERROR.search(message))


class OpenAIClient:
    """An OpenAI-compatible API: one HTTP connection pool, retries with backoff, model discovery.

    Args:
        base_url: The API root, e.g. ``http://localhost:8000/v1``.
        model: The served model's name; when ``None``, the only model listed by ``/models``.
        concurrency: Connections kept (requests in flight at once).
        timeout: Seconds allowed for one HTTP request.
        max_retries: Retries of one request on 5xx, 429 and connection errors.
        backoff: Seconds before the first retry; doubled at each further one.
        max_backoff: Cap on the wait between two retries.
        api_key: Sent as a bearer token; when ``None``, read from the variable ``api_key_env``.
        api_key_env: The environment variable holding the key (``OPENAI_API_KEY``); keys never go
            into spec strings, which runs record (see :func:`uae.teachers.parse_spec_options`).

    Raises:
        ValueError: ``base_url`` is not an http(s) URL, or the server does not list exactly one model.
        TeacherServerError: the server cannot be reached.
    """

    def __init__(self, base_url: str, model: str | None = None, concurrency: int = 8, timeout: float = 120.0,
                 max_retries: int = 6, backoff: float = 0.5, max_backoff: float = 30.0, api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY") -> None:
        if not str(base_url).startswith(("http://", "https://")):
            raise ValueError(f"the openai teacher needs an http(s) URL such as http://localhost:8000/v1, got {base_url!r}")
        self.base_url = str(base_url).rstrip("/")
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        api_key = api_key or os.environ.get(api_key_env) or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=int(concurrency), max_keepalive_connections=int(concurrency))
        self._http = httpx.Client(timeout=float(timeout), limits=limits, headers=headers)
        self.model = model or self._only_served_model()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def _only_served_model(self) -> str:
        response = self.send("GET", "/models", None)
        ids = [m.get("id") for m in response.json().get("data", []) if isinstance(m, dict)]
        if len(ids) != 1:
            raise ValueError(f"{self.base_url}/models lists {ids or 'no models'}; name one with model=...")
        return ids[0]

    def send(self, method: str, path: str, payload: dict[str, Any] | None, allow_context_error: bool = False) -> httpx.Response:
        """One HTTP request with retries on 5xx, 429 and connection errors, and exponential backoff.

        Args:
            method: ``GET`` or ``POST``.
            path: Below ``base_url``, e.g. ``/completions``.
            payload: The JSON body (``None`` for none).
            allow_context_error: Return a 400 reply instead of raising (see :meth:`complete_fitting`).

        Raises:
            TeacherServerError: the server kept failing after every retry, or refused the request.
        """
        url = self.base_url + path
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.75 + 0.5 * random.random()))
            try:
                response = self._http.request(method, url, json=payload)
            except httpx.TransportError as err:
                problem = f"{type(err).__name__}: {err}"
                continue
            if response.status_code in _RETRY_STATUS:
                problem = f"HTTP {response.status_code}: {error_message(response)}"
                continue
            if response.status_code == 400 and allow_context_error:
                return response
            if response.status_code >= 400:
                raise TeacherServerError(f"{method} {url} failed: HTTP {response.status_code}: {error_message(response)}")
            return response
        raise TeacherServerError(f"{method} {url} still failing after {self.max_retries} retries; last error: {problem}")

    def complete_fitting(self, text: T, payload: Callable[[T], dict[str, Any]], shorten: Callable[[T, str], T],
                         exhausted: str, path: str = "/completions") -> tuple[httpx.Response, T, bool]:
        """``POST /completions`` with ``payload(text)``; while the server answers 400, cut ``text`` and try again.

        Args:
            text: What may be cut (a passage, a context), from which ``payload`` builds the request.
            payload: The request body for a given ``text``.
            shorten: ``shorten(text, message)``: a shorter ``text`` for the server's 400 ``message``;
                it raises when the message is no context error or nothing is left to cut.
            exhausted: The message of the ``ValueError`` raised after :data:`MAX_CUTS` cuts.
            path: ``/completions``, or ``/chat/completions`` for a chat payload.

        Returns:
            The successful reply, the ``text`` it was built from, and whether ``text`` was cut.
        """
        truncated = False
        for _ in range(MAX_CUTS):
            response = self.send("POST", path, payload(text), allow_context_error=True)
            if response.status_code != 400:
                return response, text, truncated
            text, truncated = shorten(text, error_message(response)), True
        raise ValueError(exhausted)


class OpenAICompatTeacher(Teacher):
    """Answer NLLs from an OpenAI-compatible completions server's prompt log-probs.

    Args:
        base_url: The API root, e.g. ``http://localhost:8000/v1``.
        model: The served model's name; when ``None``, the only model listed by ``/models``.
        templates: Prompt templates; the answer always comes last.
        mode: ``echo`` (OpenAI ``echo`` + ``logprobs``) or ``prompt_logprobs`` (vLLM's extension).
        concurrency: Requests in flight at once.
        timeout: Seconds allowed for one HTTP request.
        max_retries: Retries of one request on 5xx, 429 and connection errors.
        backoff: Seconds before the first retry; doubled at each further one.
        max_backoff: Cap on the wait between two retries.
        max_tokens: Tokens to generate (vLLM needs at least 1; OpenAI's legacy API accepts 0).
        api_key: Sent as a bearer token; when ``None``, read from the variable ``api_key_env``.
        api_key_env: The environment variable holding the key (``openai:URL,api_key_env=MY_KEY``).
        chat: A chat endpoint (``/chat/completions``, hosted APIs): it cannot score prompts, so
            :meth:`score` (labeling, UPR) refuses with one line; the judge re-ranker uses
            :meth:`next_token_logprobs` (the first answer token's top log-probs) instead.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        templates: PromptTemplates = PromptTemplates(),
        mode: str = "echo",
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_tokens: int = 1,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        chat: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} for the openai teacher; expected one of {MODES}")
        self.templates = templates
        self.mode = mode
        self.concurrency = int(concurrency)
        self.max_tokens = int(max_tokens)
        self.tokens_processed = 0
        self.chat = bool(chat)
        self._count_lock = threading.Lock()
        self.client = OpenAIClient(base_url, model, self.concurrency, timeout, max_retries, backoff, max_backoff, api_key,
                                   api_key_env)
        self.base_url = self.client.base_url
        self.model = self.client.model
        self.name = f"openai:{self.model}"

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

    def __enter__(self) -> OpenAICompatTeacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """Teacher name, served model, request mode and prompt templates (not the server address)."""
        return {
            "teacher": self.name,
            "model": self.model,
            "backend": "openai-compatible completions",
            "mode": self.mode,
            "templates": {"with_passage": self.templates.with_passage, "without_passage": self.templates.without_passage},
        }

    # ---- scoring ------------------------------------------------------------------------------

    def score(self, requests: Sequence[NLLRequest]) -> list[NLLResult]:
        """Mean answer NLL (nats per answer token) of each request, in input order.

        Raises:
            PromptLogprobsUnavailable: The server does not return prompt log-probs.
            TeacherServerError: The server kept failing after every retry, or refused a request.
            ValueError: An answer has no tokens, or a question alone exceeds the server's context.
        """
        if self.chat:
            raise self._unavailable("it is a chat endpoint (chat=true), and chat completions return log-probs of generated "
                                    "tokens only")
        for index, request in enumerate(requests):
            if not request.answer.strip():
                raise ValueError(f"request {index} (question {request.question!r}): the answer {request.answer!r} is empty")
        groups = sharing_groups(requests)
        results: list[NLLResult | None] = [None] * len(requests)
        if len(requests) <= 1 or self.concurrency <= 1:
            for index in (i for group in groups for i in group):
                results[index] = self._score_one(index, requests[index])
        else:
            self._score_grouped(requests, groups, results)
        return results  # type: ignore[return-value]

    def _score_grouped(self, requests: Sequence[NLLRequest], groups: list[list[int]], results: list[NLLResult | None]) -> None:
        """Send each sharing group's first request alone, and its other requests once that one is answered.

        A server with automatic prefix caching (vLLM, SGLang, llama.cpp) caches a prompt's blocks
        once they are computed, so requests sent while their passage is still being computed
        cannot reuse it. Up to ``concurrency`` requests are in flight: the followers of answered
        leaders first, then the next group's leader, so a group's requests arrive in a row.
        """
        waiting, ready = deque(groups), deque[int]()
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            in_flight: dict[Future, tuple[int, list[int]]] = {}
            while waiting or ready or in_flight:
                while len(in_flight) < self.concurrency and (ready or waiting):
                    if ready:
                        index, followers = ready.popleft(), []
                    else:
                        group = waiting.popleft()
                        index, followers = group[0], group[1:]
                    in_flight[pool.submit(self._score_one, index, requests[index])] = (index, followers)
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    index, followers = in_flight.pop(future)
                    results[index] = future.result()
                    ready.extend(followers)

    def _score_one(self, index: int, request: NLLRequest) -> NLLResult:
        response, passage, truncated = self.client.complete_fitting(
            request.passage,
            lambda passage: self._payload(self.templates.prefix(request.question, passage) + request.answer),
            lambda passage, message: self._shorter_passage(index, request, passage, message),
            f"request {index} (question {request.question!r}): the passage still does not fit after {MAX_CUTS} cuts",
        )
        return self._result(index, request, self.templates.prefix(request.question, passage), response.json(), truncated)

    def _payload(self, prompt: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "prompt": prompt, "max_tokens": self.max_tokens, "temperature": 0.0}
        if self.mode == "echo":
            payload.update(echo=True, logprobs=1)
        else:
            payload["prompt_logprobs"] = 1
        return payload

    def _result(self, index: int, request: NLLRequest, prefix: str, body: dict[str, Any], truncated: bool) -> NLLResult:
        try:
            tokens = parse_echo_choice(body, self.max_tokens) if self.mode == "echo" else parse_prompt_logprobs_choice(body)
        except PromptLogprobsUnavailable as err:
            raise self._unavailable(str(err)) from None
        stem = prefix.rstrip()
        answer = answer_token_indices(tokens, len(prefix) - len(stem) + len(request.answer))
        values = [tokens[i].logprob for i in answer]
        if not answer or any(v is None for v in values):
            raise ValueError(f"request {index} (question {request.question!r}): no scored answer tokens found for "
                             f"{request.answer!r} in the server's reply")
        with self._count_lock:
            self.tokens_processed += len(tokens)
        return NLLResult(-sum(values) / len(values), len(values), truncated)  # type: ignore[arg-type]

    def next_token_logprobs(self, prompt: str, top: int = 20) -> dict[str, float]:
        """The top log-probs of the first token the model would write after ``prompt`` (one user message on chat).

        Token texts are stripped of surrounding whitespace; a text seen twice keeps its larger log-prob.
        """
        if self.chat:
            payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 1,
                       "temperature": 0.0, "logprobs": True, "top_logprobs": top}
            body = self.client.send("POST", "/chat/completions", payload).json()
            content = ((_first_choice(body).get("logprobs") or {}).get("content") or [{}])[0]
            pairs = [(entry.get("token", ""), entry.get("logprob")) for entry in content.get("top_logprobs") or []]
        else:
            payload = {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "logprobs": top}
            body = self.client.send("POST", "/completions", payload).json()
            tops = ((_first_choice(body).get("logprobs") or {}).get("top_logprobs") or [{}])[0] or {}
            pairs = list(tops.items())
        found: dict[str, float] = {}
        for token, value in pairs:
            if isinstance(value, (int, float)):
                key = str(token).strip()
                found[key] = max(found.get(key, float("-inf")), float(value))
        if not found:
            raise self._unavailable("the reply has no top log-probs of the next token")
        return found

    def _unavailable(self, reason: str) -> PromptLogprobsUnavailable:
        return PromptLogprobsUnavailable(
            f"{self.base_url} (model {self.model!r}) cannot return prompt log-probs: {reason}. The openai teacher needs "
            f"a completions endpoint that scores the prompt (vLLM, SGLang, llama.cpp; mode=echo sends echo=True "
            f"with logprobs=1, mode=prompt_logprobs sends vLLM's prompt_logprobs=1); hosted chat APIs do not score "
            f"prompts, so use one of those servers or a local hf:<model> teacher instead"
        )

    def _shorter_passage(self, index: int, request: NLLRequest, passage: str | None, message: str) -> str:
        """The passage cut to fit the context the server's 400 ``message`` names (other refusals raise)."""
        if not is_context_error(message):
            if _LOGPROBS_ERROR.search(message):
                raise self._unavailable(f"HTTP 400: {message}")
            raise TeacherServerError(f"{self.base_url}/completions refused request {index}: HTTP 400: {message}")
        if not passage:
            raise ValueError(f"request {index}: question {request.question!r} and its answer do not fit the "
                             f"server's context even without a passage ({message})")
        keep = len(passage) // 2
        limit, requested = _MAX_CONTEXT.search(message), _REQUESTED.search(message)
        if limit and requested:
            prompt_tokens = int(next(g for g in requested.groups() if g))
            overflow = prompt_tokens + self.max_tokens - int(limit.group(1))
            prompt_chars = len(self.templates.prefix(request.question, passage)) + len(request.answer)
            keep = min(len(passage) - 1, len(passage) - int(1.1 * overflow * prompt_chars / max(prompt_tokens, 1)) - 1)
        return passage[: max(keep, 0)]


CHARS_PER_TOKEN = 3
"""Characters counted as one token when no tokenizer is named: fewer than the ~4 of English text
under GPT-style tokenizers, so an estimated prompt errs on the short side of the context."""


class OpenAIGenerator:
    """Greedy text from an OpenAI-compatible server: what RankGPT and the OpenAI reader generate through.

    It is a :class:`~uae.teachers.causal_lm.TextGenerator`: RankGPT cuts passages so that its
    window fits ``context`` tokens. A hosted API does not hand out its tokenizer, so tokens are
    counted with a local tokenizer when ``tokenizer`` names one (exact when it is the served
    model's), else estimated as :data:`CHARS_PER_TOKEN` characters each (and :meth:`describe` says so).
    When the server still refuses a prompt as too long, the generator learns from the refusal
    (the server's own token count, or twice the estimate when it names none: characters per token,
    or the tokens a chat wrapping adds) and raises :class:`~uae.errors.ContextOverflow`, so the
    caller can refit its prompt and try again.

    Args:
        base_url: The API root, e.g. ``http://localhost:8000/v1``.
        model: The served model; ``None``: the only one ``/models`` lists.
        chat: Send prompts as one user message to ``/chat/completions`` (hosted chat APIs) instead
            of ``/completions``.
        context: The model's context in tokens (prompt plus generated tokens).
        tokenizer: A transformers tokenizer (name or folder) to count and cut tokens with.
        **client_options: ``concurrency``, ``timeout``, ``max_retries``, ``backoff``,
            ``max_backoff``, ``api_key``, ``api_key_env`` of :class:`OpenAIClient`.
    """

    def __init__(self, base_url: str, model: str | None = None, chat: bool = False, context: int = 8192,
                 tokenizer: str | None = None, **client_options: Any) -> None:
        self.client = OpenAIClient(base_url, model=model, **client_options)
        self.model = self.client.model
        self.chat = bool(chat)
        self.max_length = int(context)
        self.chars_per_token = float(CHARS_PER_TOKEN)
        self.overhead = 0
        """Tokens the server adds to every prompt (a chat wrapping), learned from its refusals."""
        self.tokenizer_name = tokenizer
        self.tokenizer = None
        if tokenizer:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=Path(tokenizer).is_dir())
        self.path = "/chat/completions" if self.chat else "/completions"

    def describe(self) -> dict[str, Any]:
        """Served model, endpoint, context and how tokens are counted (not the server address)."""
        counting = (f"tokenizer {self.tokenizer_name}" if self.tokenizer is not None
                    else f"estimated, {self.chars_per_token:.2f} characters a token")
        return {"generator": f"openai:{self.model}", "model": self.model, "endpoint": self.path, "context": self.max_length,
                "token_counting": counting}

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (no special tokens), counted or estimated."""
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return math.ceil(len(text) / self.chars_per_token)

    def prompt_tokens(self, prompt: str) -> int:
        """Tokens of the prompt as sent, with what the server was seen to add (BOS, a chat wrapping)."""
        return self.count_tokens(prompt) + self.overhead

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """The head of ``text`` within ``max_tokens`` tokens, and whether it was cut."""
        if max_tokens <= 0:
            return "", bool(text)
        if self.tokenizer is None:
            limit = int(max_tokens * self.chars_per_token)
            return (text, False) if len(text) <= limit else (text[:limit], True)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) <= max_tokens:
            return text, False
        return text[: encoded["offset_mapping"][max_tokens - 1][1]], True

    def payload(self, prompt: str, max_new_tokens: int, stop: list[str] | None = None) -> dict[str, Any]:
        """The greedy request body: a completions prompt, or one user message for chat."""
        if self.chat:
            body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        else:
            body = {"model": self.model, "prompt": prompt}
        body.update({"max_tokens": int(max_new_tokens), "temperature": 0.0})
        if stop:
            body["stop"] = stop
        return body

    def reply_text(self, body: dict[str, Any]) -> str:
        """The generated text of a reply (``choices[0].message.content`` on chat, ``choices[0].text`` otherwise).

        Raises:
            ValueError: the reply has no such field.
        """
        choices = body.get("choices") if isinstance(body, dict) else None
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        text = (first.get("message") or {}).get("content") if self.chat else first.get("text")
        if not isinstance(text, str):
            field = "choices[0].message.content" if self.chat else "choices[0].text"
            raise ValueError(f"the {self.path} reply of {self.client.base_url} has no {field}: {str(body)[:200]}")
        return text

    def generate(self, prompt: str, max_new_tokens: int) -> str:
        """Greedy (``temperature=0``) continuation of ``prompt``, at most ``max_new_tokens`` tokens.

        Raises:
            ContextOverflow: the server found the prompt too long (the counts are corrected: refit and retry).
            TeacherServerError: any other refusal, or a server that keeps failing.
        """
        response = self.client.send("POST", self.path, self.payload(prompt, max_new_tokens), allow_context_error=True)
        if response.status_code == 400:
            message = error_message(response)
            if not is_context_error(message):
                raise TeacherServerError(f"{self.client.base_url}{self.path} refused a generation: HTTP 400: {message}")
            self._learn_length(prompt, max_new_tokens, message)
            raise ContextOverflow(f"{self.client.base_url}{self.path}: the prompt is longer than the server's context "
                                  f"({message}); token counts corrected")
        return self.reply_text(response.json())

    def _learn_length(self, prompt: str, max_new_tokens: int, message: str) -> None:
        """Correct the token counting from a too-long refusal (the server's own count when it gives one)."""
        counted = self.count_tokens(prompt)
        served = _served_prompt_tokens(message, max_new_tokens)
        if served is None:
            served = 2 * (counted + self.overhead)
        if self.tokenizer is None:
            self.chars_per_token = min(self.chars_per_token, len(prompt) / max(served, 1))
        else:
            self.overhead = max(self.overhead, served - counted)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()
