"""Readers that answer a question from retrieved passages, for answer-quality evaluation.

``load_reader(spec)`` builds one from a short spec string:

- ``extractive``: the offline baseline reader (:class:`ExtractiveReader`). It picks the sentence
  of the retrieved text that best matches the question by BM25-weighted term overlap and
  answers with it (``mode="sentence"``) or with what is left of it once the question's own
  words are removed (``mode="residual"``, the default). It is **not an LLM**: every report
  labels its numbers "extractive reader, not an LLM".
- ``hf:<model-or-path>``: a transformers causal LM, greedy decoding of at most
  ``max_new_tokens`` tokens (:class:`HFReader`, through :class:`uae.teachers.causal_lm.GreedyGenerator`).
- ``openai:<base_url>``: an OpenAI-compatible completions server (vLLM, llama.cpp), greedy
  (``temperature=0``), through :class:`uae.teachers.openai.OpenAIGenerator` (RankGPT's too) and
  the openai teacher's HTTP client, retries, model discovery and cut-and-retry loop (:class:`OpenAIReader`);
  ``openai:<base_url>,chat=true`` sends the prompt as one user message to ``/chat/completions``
  (hosted chat APIs; the key comes from ``OPENAI_API_KEY`` or ``api_key_env=NAME``).

LM readers see one prompt per question, built from a template with ``{context}`` and
``{question}`` (:data:`DEFAULT_PROMPT`); the context is the top-k passages, best first, numbered
``[1] ...``. When the prompt does not fit the model's context, the context is cut from its end
(the lowest-ranked text goes first) and the answer is marked ``truncated``. The answer is the
first non-empty line of the continuation, stripped.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_PROMPT = (
    "Answer the question using the context. Reply with a short answer only.\n\n"
    "Context:\n{context}\n\nQuestion: {question}\nAnswer:"
)
EXTRACTIVE_LABEL = "extractive reader, not an LLM"
LM_LABEL = "language model, greedy decoding"

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_QUESTION_WORDS = frozenset({"what", "who", "whom", "whose", "which", "when", "where", "why", "how", "does", "did", "do"})


@dataclass(frozen=True)
class ReaderRequest:
    """One question and the texts of its retrieved passages, best first."""

    question: str
    passages: tuple[str, ...]


@dataclass(frozen=True)
class ReaderAnswer:
    """A reader's answer; ``truncated`` when the context was cut to fit the model."""

    text: str
    truncated: bool = False


def check_prompt(template: str) -> str:
    """Return ``template`` if it holds ``{context}`` and ``{question}``.

    Raises:
        ValueError: a field is missing.
    """
    for name in ("{context}", "{question}"):
        if name not in template:
            raise ValueError(f"the generation prompt must contain {name}, got {template!r}")
    return template


def format_context(passages: Sequence[str]) -> str:
    """Passages numbered ``[1] ...`` in rank order, separated by blank lines."""
    return "\n\n".join(f"[{i}] {text.strip()}" for i, text in enumerate(passages, start=1))


def first_line(text: str) -> str:
    """The first non-empty line of a continuation, stripped (``""`` when there is none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class Reader(ABC):
    """Base class of readers: :meth:`generate` answers requests in order."""

    name: str = "reader"
    kind: str = LM_LABEL

    def fit(self, passages: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """See the corpus first (only corpus-statistics readers need it)."""

    @abstractmethod
    def generate(self, requests: Sequence[ReaderRequest]) -> list[ReaderAnswer]:
        """One answer per request, in order."""

    def describe(self) -> dict[str, Any]:
        """What produced the answers; part of the resume key of saved generations."""
        return {"generator": self.name, "kind": self.kind}


# ---- the offline extractive reader ------------------------------------------------------------


def _words(text: str) -> list[re.Match[str]]:
    return list(_WORD.finditer(text))


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after ``.``, ``!`` or ``?`` followed by whitespace)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


class ExtractiveReader(Reader):
    """The sentence of the retrieved text that best matches the question; not an LLM.

    A sentence's score is BM25 over the question's content words (lower-cased ``\\w+`` tokens,
    minus bm25s' English stop words and question words): ``sum_t idf(t) * tf * (k1 + 1) /
    (tf + k1 * (1 - b + b * len / avg_len))``. ``idf`` comes from the corpus passages when
    :meth:`fit` was called, else from the request's own sentences. Ties go to the earlier
    sentence, so higher-ranked passages win.

    Args:
        mode: ``"residual"`` answers with the best sentence's words that are not in the
            question (in order, original spelling); ``"sentence"`` with the whole sentence.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
    """

    name = "extractive"
    kind = EXTRACTIVE_LABEL

    def __init__(self, mode: Literal["residual", "sentence"] = "residual", k1: float = 1.2, b: float = 0.75) -> None:
        if mode not in ("residual", "sentence"):
            raise ValueError(f"extractive mode must be 'residual' or 'sentence', got {mode!r}")
        self.mode = mode
        self.k1 = float(k1)
        self.b = float(b)
        self._df: Counter[str] = Counter()
        self._documents = 0

    def fit(self, passages: Sequence[str]) -> None:
        """Document frequencies of the corpus, for the idf weights."""
        self._df = Counter()
        for text in passages:
            self._df.update({m.group().lower() for m in _WORD.finditer(text)})
        self._documents = len(passages)

    def describe(self) -> dict[str, Any]:
        return {"generator": self.name, "kind": self.kind, "mode": self.mode, "k1": self.k1, "b": self.b,
                "idf": "corpus" if self._documents else "retrieved sentences"}

    def generate(self, requests: Sequence[ReaderRequest]) -> list[ReaderAnswer]:
        return [ReaderAnswer(self.answer(r.question, r.passages)) for r in requests]

    def answer(self, question: str, passages: Sequence[str]) -> str:
        """The answer to one question from its passages (``""`` when there is no text)."""
        sentences = [s for text in passages for s in split_sentences(text)]
        if not sentences:
            return ""
        best = self.best_sentence(question, sentences)
        return best if self.mode == "sentence" else self._residual(question, best)

    def best_sentence(self, question: str, sentences: Sequence[str]) -> str:
        """The highest-scoring sentence; the first one on ties."""
        terms = {w.lower() for w in (m.group() for m in _words(question))} - _stopwords()
        tokenised = [[m.group().lower() for m in _words(s)] for s in sentences]
        idf = self._idf(terms, tokenised)
        avg_len = max(sum(map(len, tokenised)) / len(tokenised), 1.0)
        scores = [self._bm25(tokens, idf, avg_len) for tokens in tokenised]
        return sentences[max(range(len(sentences)), key=lambda i: (scores[i], -i))]

    def _idf(self, terms: set[str], tokenised: list[list[str]]) -> dict[str, float]:
        if self._documents:
            n, df = self._documents, self._df
        else:
            n, df = len(tokenised), Counter(t for tokens in tokenised for t in set(tokens))
        return {t: math.log(1.0 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) for t in terms}

    def _bm25(self, tokens: list[str], idf: dict[str, float], avg_len: float) -> float:
        counts = Counter(tokens)
        norm = self.k1 * (1.0 - self.b + self.b * len(tokens) / avg_len)
        return sum(w * counts[t] * (self.k1 + 1.0) / (counts[t] + norm) for t, w in idf.items() if counts[t])

    @staticmethod
    def _residual(question: str, sentence: str) -> str:
        asked = {m.group().lower() for m in _words(question)}
        kept = [m.group() for m in _words(sentence) if m.group().lower() not in asked]
        return " ".join(kept)


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | _QUESTION_WORDS


# ---- LM readers ------------------------------------------------------------------------------


class HFReader(Reader):
    """Greedy answers from a transformers causal LM.

    Args:
        model: Hub name or local folder of the causal LM.
        prompt: Template with ``{context}`` and ``{question}``.
        max_new_tokens: Most tokens generated per answer.
        chat_template: Wrap the prompt in the tokenizer's chat template (``None``: when it has one).
        **lm_options: ``device``, ``dtype``, ``max_length``, ``tokenizer`` of
            :class:`uae.teachers.causal_lm.CausalLM`, which loads the model.
    """

    kind = LM_LABEL

    def __init__(self, model: str, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 32,
                 chat_template: bool | None = None, **lm_options: Any) -> None:
        from uae.teachers.causal_lm import CausalLM, GreedyGenerator

        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.prompt = check_prompt(prompt)
        self.max_new_tokens = int(max_new_tokens)
        self.name = f"hf:{model}"
        self.generator = GreedyGenerator(CausalLM(model, **lm_options), chat_template=chat_template)

    def describe(self) -> dict[str, Any]:
        return {"generator": self.name, "kind": self.kind, "prompt": self.prompt, "max_new_tokens": self.max_new_tokens,
                "chat_template": self.generator.chat_template, "max_length": self.generator.max_length}

    def generate(self, requests: Sequence[ReaderRequest]) -> list[ReaderAnswer]:
        answers = []
        for request in requests:
            prompt, truncated = self.fit_prompt(request)
            answers.append(ReaderAnswer(first_line(self.generator.generate(prompt, self.max_new_tokens)), truncated))
        return answers

    def fit_prompt(self, request: ReaderRequest) -> tuple[str, bool]:
        """The prompt with its context cut from the end until prompt + answer fit the model's context.

        Raises:
            ValueError: the question alone does not fit.
        """
        limit = self.generator.max_length - self.max_new_tokens
        empty = self.prompt.format(context="", question=request.question)
        budget = limit - self.generator.prompt_tokens(empty)
        if budget < 0:
            raise ValueError(f"question {request.question!r} does not fit the context of {self.generator.max_length} tokens "
                             f"with {self.max_new_tokens} new tokens, even without passages")
        context = format_context(request.passages)
        context, truncated = self.generator.truncate(context, budget)
        prompt = self.prompt.format(context=context, question=request.question)
        while (overflow := self.generator.prompt_tokens(prompt) - limit) > 0:  # tokens can merge across the seams
            context, _ = self.generator.truncate(context, self.generator.count_tokens(context) - overflow)
            prompt, truncated = self.prompt.format(context=context, question=request.question), True
        return prompt, truncated


class OpenAIReader(Reader):
    """Greedy answers from an OpenAI-compatible server, through :class:`uae.teachers.openai.OpenAIGenerator`.

    Args:
        base_url: The API root, e.g. ``http://localhost:8000/v1``.
        model: The served model; ``None``: the only one ``/models`` lists.
        prompt: Template with ``{context}`` and ``{question}``.
        max_new_tokens: ``max_tokens`` of each completion.
        concurrency: Requests in flight.
        chat: Send the prompt as one user message to ``/chat/completions``.
        **client_options: ``timeout``, ``max_retries``, ``backoff``, ``max_backoff``, ``api_key``
            of :class:`uae.teachers.openai.OpenAIClient`.
    """

    kind = LM_LABEL

    def __init__(self, base_url: str, model: str | None = None, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 32,
                 concurrency: int = 8, chat: bool | str = False, **client_options: Any) -> None:
        from uae.teachers.openai import OpenAIGenerator

        chat = chat if isinstance(chat, bool) else str(chat).strip().lower() in ("1", "true", "yes", "on")
        self.prompt = check_prompt(prompt)
        self.max_new_tokens = int(max_new_tokens)
        self.concurrency = int(concurrency)
        self.generator = OpenAIGenerator(base_url, model=model, chat=chat, concurrency=concurrency, **client_options)
        self.client = self.generator.client
        self.chat = self.generator.chat
        self.model = self.generator.model
        self.name = f"openai:{self.model}"

    def describe(self) -> dict[str, Any]:
        return {"generator": self.name, "kind": self.kind, "model": self.model, "prompt": self.prompt,
                "max_new_tokens": self.max_new_tokens, "endpoint": self.generator.path}

    def generate(self, requests: Sequence[ReaderRequest]) -> list[ReaderAnswer]:
        if len(requests) <= 1 or self.concurrency <= 1:
            return [self._answer(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._answer, requests))

    def _answer(self, request: ReaderRequest) -> ReaderAnswer:
        from uae.teachers.openai import MAX_CUTS

        # no stop on chat: chat answers may open with a newline
        stop = None if self.chat else ["\n"]
        response, _, truncated = self.client.complete_fitting(
            format_context(request.passages),
            lambda context: self.generator.payload(self.prompt.format(context=context, question=request.question),
                                                   self.max_new_tokens, stop),
            lambda context, message: self._shorter_context(request, context, message),
            f"question {request.question!r}: the prompt still does not fit after {MAX_CUTS} cuts",
            path=self.generator.path,
        )
        return ReaderAnswer(first_line(self.generator.reply_text(response.json())), truncated)

    def _shorter_context(self, request: ReaderRequest, context: str, message: str) -> str:
        """The first half of ``context``, when the server's 400 ``message`` says the prompt is too long."""
        from uae.errors import TeacherServerError
        from uae.teachers.openai import is_context_error

        if not is_context_error(message):
            raise TeacherServerError(f"{self.client.base_url}{self.generator.path} refused a generation: HTTP 400: {message}")
        if not context:
            raise ValueError(f"question {request.question!r} does not fit the server's context even without passages")
        return context[: len(context) // 2]


def load_reader(spec: str, prompt: str | None = None, max_new_tokens: int = 32, **options: Any) -> Reader:
    """Build a reader from ``extractive``, ``extractive:mode=sentence``, ``hf:<model>`` or ``openai:<base_url>``.

    Args:
        spec: The backend (see the module docstring); ``openai:`` takes ``,model=NAME`` options
            after the URL as the teacher spec does.
        prompt: Template for LM readers (default :data:`DEFAULT_PROMPT`); the extractive reader has none.
        max_new_tokens: Most tokens an LM reader generates.
        **options: Constructor options of the backend.

    Raises:
        ValueError: unknown backend, or a prompt given to the extractive reader.
    """
    from uae.teachers import parse_spec_options

    kind, _, rest = spec.partition(":")
    if kind == "extractive":
        if prompt is not None:
            raise ValueError("the extractive reader does not use a prompt; pass one to hf: or openai: readers only")
        return ExtractiveReader(**{**parse_spec_options(rest), **options})
    template = check_prompt(prompt) if prompt is not None else DEFAULT_PROMPT
    if kind == "hf" and rest:
        return HFReader(rest, prompt=template, max_new_tokens=max_new_tokens, **options)
    if kind == "openai" and rest:
        url, _, text = rest.partition(",")
        return OpenAIReader(url, prompt=template, max_new_tokens=max_new_tokens, **{**parse_spec_options(text), **options})
    raise ValueError(f"unknown generator {spec!r}; expected 'extractive', 'extractive:mode=sentence', 'hf:<model>' "
                     "or 'openai:<base_url>'")
