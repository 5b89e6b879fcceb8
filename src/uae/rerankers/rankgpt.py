"""RankGPT: listwise re-ranking by permutation generation with a sliding window (Sun et al., EMNLP 2023).

The LLM sees a window of passages labelled ``[1]..[m]`` and writes an ordering such as
``[2] > [1] > [3]``. Windows of ``window`` passages slide from the bottom of the first-stage
ranking to the top in steps of ``step``, so strong passages found low bubble up: after a full
pass the best ``window - step`` passages (by the LLM's judgement) are at the top.

The model's output is never trusted: :func:`parse_permutation` always returns a permutation,
and every repair it makes is counted (:class:`ParseStats`, and ``Reranker.repairs``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from uae.errors import ContextOverflow
from uae.rerankers.base import Reranker
from uae.teachers.causal_lm import TextGenerator

_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_BARE = re.compile(r"\d+")
REFITS = 3
"""Times a window's prompt is cut again after a server refused it as too long (its token counts corrected)."""
_MAX_ID_DIGITS = 9
"""Longer digit runs are invented ids by construction (and never converted to int)."""

PROMPT_HEAD = (
    "I will provide you with {n} passages, each indicated by a numerical identifier []. "
    "Rank the passages based on their relevance to the search query: {query}\n\n"
)
PROMPT_TAIL = (
    "\nSearch Query: {query}\n"
    "Rank the {n} passages above based on their relevance to the search query. All the passages should be "
    "included and listed using identifiers, in descending order of relevance. The output format should be "
    "[] > [], e.g., [2] > [1]. Only respond with the ranking results, do not say any word or explain.\nRanking:"
)


@dataclass
class ParseStats:
    """Repairs :func:`parse_permutation` made to one (or, summed, several) model outputs.

    Attributes:
        missing: Ids the output left out, appended in their original order.
        duplicates: Repeated ids dropped (the first mention counts).
        out_of_range: Ids outside ``1..n`` (invented) ignored.
        unparsable: Outputs without a single usable id (the identity order is used).
    """

    missing: int = 0
    duplicates: int = 0
    out_of_range: int = 0
    unparsable: int = 0

    def __add__(self, other: ParseStats) -> ParseStats:
        return ParseStats(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def parse_permutation(text: str, n: int) -> tuple[list[int], ParseStats]:
    """Read an ordering like ``"[2] > [1] > [3]"`` into 0-based indices; always a permutation of ``range(n)``.

    Bracketed ids are read when there are any, bare integers otherwise. Ids outside ``1..n`` are
    ignored, repeated ids keep their first position, and ids never mentioned are appended in
    their original order; an output with no id at all gives the identity.

    Args:
        text: The model's output.
        n: Number of passages in the window.

    Returns:
        ``(order, stats)``: ``order[r]`` is the 0-based index of the passage ranked ``r``-th.
    """
    stats = ParseStats()
    tokens = _BRACKETED.findall(text) or _BARE.findall(text)
    order: list[int] = []
    seen: set[int] = set()
    for token in tokens:
        digits = "".join(str(unicodedata.digit(c)) for c in token).lstrip("0")  # \d matches any script's digits
        index = int(digits or "0") - 1 if len(digits) <= _MAX_ID_DIGITS else -1
        if not 0 <= index < n:
            stats.out_of_range += 1
        elif index in seen:
            stats.duplicates += 1
        else:
            seen.add(index)
            order.append(index)
    if not order and n:
        stats.unparsable += 1
    missing = [i for i in range(n) if i not in seen]
    stats.missing += len(missing)
    return order + missing, stats


def window_spans(n: int, window: int, step: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each window, back to front, the last one always starting at 0.

    The reference implementation stops once ``start`` would fall below 0, which leaves the top
    unvisited when ``n - window`` is not a multiple of ``step`` (or when ``n < window``); here the
    last window is clamped to start at 0 instead.
    """
    if n <= 0:
        return []
    spans, end = [], n
    while True:
        start = max(0, end - window)
        spans.append((start, end))
        if start == 0:
            return spans
        end -= step


class RankGPTReranker(Reranker):
    """Listwise re-ranking with a generating LLM and a sliding window.

    Args:
        generator: What generates (a :class:`~uae.teachers.causal_lm.GreedyGenerator` or a test stub).
        window: Passages per prompt.
        step: How far the window moves up between prompts (``1 <= step <= window``); default ``window // 2``.
        max_passage_tokens: Each passage is cut to this many tokens (less if the window must fit the context).
        max_new_tokens: Bound on generated tokens; by default the length of the complete
            ordering ``[1] > [2] > ... > [m]`` plus a small margin, which is what a compliant model writes.

    Raises:
        ValueError: Bad window or step.
    """

    name = "rankgpt"

    def __init__(
        self,
        generator: TextGenerator,
        window: int = 20,
        step: int | None = None,
        max_passage_tokens: int = 300,
        max_new_tokens: int | None = None,
    ) -> None:
        super().__init__(getattr(generator, "lm", None))
        step = max(1, window // 2) if step is None else step
        if window < 2 or not 1 <= step <= window:
            raise ValueError(f"RankGPT needs window >= 2 and 1 <= step <= window, got window={window}, step={step}")
        self.generator = generator
        self.window, self.step = window, step
        self.max_passage_tokens = max_passage_tokens
        self.max_new_tokens = max_new_tokens
        self.parse_stats = ParseStats()
        self.outputs: list[str] = []
        """The raw model outputs of the last :meth:`score` call, one per window."""

    def score(self, query: str, passages: list[str]) -> list[float]:
        """Scores ``n - position`` of the final order (higher is better)."""
        order = self.order(query, passages)
        scores = [0.0] * len(passages)
        for position, index in enumerate(order):
            scores[index] = float(len(passages) - position)
        return scores

    def order(self, query: str, passages: list[str]) -> list[int]:
        """The sliding-window ordering of ``passages`` (0-based indices, best first)."""
        items = list(range(len(passages)))
        self.outputs = []
        for start, end in window_spans(len(passages), self.window, self.step):
            inside = items[start:end]
            permutation = self.permute(query, [passages[i] for i in inside])
            items[start:end] = [inside[j] for j in permutation]
        return items

    def permute(self, query: str, passages: list[str]) -> list[int]:
        """One window: prompt, generate, parse (repairs counted)."""
        if len(passages) < 2:
            return list(range(len(passages)))
        max_new = self._max_new_tokens(len(passages))
        for attempt in range(1, REFITS + 2):
            prompt = self.prompt(query, passages, max_new)
            try:
                output = self.generator.generate(prompt, max_new)
                break
            except ContextOverflow:
                if attempt > REFITS:
                    raise
                self.count("refitted_prompt")
        self.outputs.append(output)
        order, stats = parse_permutation(output, len(passages))
        self.parse_stats = self.parse_stats + stats
        for kind, count in stats.to_dict().items():
            self.count(f"{kind}_id" if kind != "unparsable" else "unparsable_output", count)
        return order

    def _max_new_tokens(self, m: int) -> int:
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return self.generator.count_tokens(" > ".join(f"[{i}]" for i in range(1, m + 1))) + 2

    def prompt(self, query: str, passages: list[str], max_new_tokens: int = 0) -> str:
        """The window's prompt, passages cut so that prompt plus output fit the context.

        Raises:
            ValueError: Not even the instructions and the ids fit the context.
        """
        m = len(passages)
        room = self.generator.max_length - max_new_tokens
        overhead = self.generator.prompt_tokens(self._render(query, [""] * m))
        budget = min(self.max_passage_tokens, (room - overhead) // m)
        while budget >= 1:
            cut = [self.generator.truncate(p, budget) for p in passages]
            prompt = self._render(query, [text for text, _ in cut])
            overflow = self.generator.prompt_tokens(prompt) - room
            if overflow <= 0:
                self.count("truncated_passage", sum(truncated for _, truncated in cut))
                return prompt
            budget -= max(1, -(-overflow // m))
        raise ValueError(
            f"a RankGPT window of {m} passages does not fit the context of {self.generator.max_length} tokens "
            f"with {max_new_tokens} tokens to generate; lower the window"
        )

    @staticmethod
    def _render(query: str, passages: list[str]) -> str:
        body = "".join(f"[{i}] {p}\n" for i, p in enumerate(passages, start=1))
        return PROMPT_HEAD.format(n=len(passages), query=query) + body + PROMPT_TAIL.format(n=len(passages), query=query)

    def _backend_description(self) -> dict[str, Any] | str:
        if self.backend is not None:
            return self.backend.describe()
        describe = getattr(self.generator, "describe", None)
        return describe() if callable(describe) else type(self.generator).__name__

    def describe(self) -> dict[str, Any]:
        """Base description plus window, step, limits and the parse repairs so far."""
        return {
            **super().describe(),
            "backend": self._backend_description(),
            "window": self.window,
            "step": self.step,
            "max_passage_tokens": self.max_passage_tokens,
            "max_new_tokens": self.max_new_tokens or "length of the full ordering + 2",
            "parse_stats": self.parse_stats.to_dict(),
        }
