"""Cut long documents into overlapping passages and map character spans onto them.

Tokens are whitespace-separated words (``\\S+``), not the word pieces of any one encoder.
The corpus is shared by BM25, the base encoder, the student and every teacher LLM, which all
tokenize differently; a corpus whose passage boundaries depended on the encoder being trained
would change when the encoder does. Words are also exact about character offsets (a chunk's
text is a verbatim slice of the document, so gold spans map without drift), fast, and need
no model files. As a guide to sizes: English prose costs about 1.3 MiniLM word pieces per word,
meeting transcripts about 1.4 (measured on SQuAD and QMSum), so the default 128 words stay
within MiniLM's 256-piece window with room for a title.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"\S+")

DEFAULT_MAX_TOKENS = 128
"""Words per chunk (about 180 MiniLM word pieces)."""

DEFAULT_OVERLAP = 32
"""Words shared by consecutive chunks, so a short answer is rarely cut in two."""


@dataclass(frozen=True)
class Chunk:
    """A verbatim slice ``document[start_char:end_char]`` of a longer text."""

    text: str
    start_char: int
    end_char: int


def chunk_text(text: str, max_tokens: int = DEFAULT_MAX_TOKENS, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    """Split ``text`` into windows of at most ``max_tokens`` words, consecutive windows sharing ``overlap``.

    Args:
        text: the document.
        max_tokens: words per chunk (> 0).
        overlap: words repeated at the start of the next chunk (0 <= overlap < max_tokens).

    Returns:
        Chunks in document order; each one starts at a word and ends at a word, its ``text``
        is exactly ``text[start_char:end_char]``, and together they cover every word. A text
        without words gives no chunk.

    Raises:
        ValueError: if ``max_tokens`` or ``overlap`` are out of range.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise ValueError(f"overlap must be in [0, max_tokens={max_tokens}), got {overlap}")
    words = [m.span() for m in _TOKEN.finditer(text)]
    chunks: list[Chunk] = []
    stride = max_tokens - overlap
    for first in range(0, len(words), stride):
        last = min(first + max_tokens, len(words)) - 1
        start, end = words[first][0], words[last][1]
        chunks.append(Chunk(text[start:end], start, end))
        if last == len(words) - 1:
            break
    return chunks


def _overlaps(start: int, end: int, chunk: Chunk) -> bool:
    if start == end:  # an empty span sits at one position
        return chunk.start_char <= start < chunk.end_char
    return start < chunk.end_char and chunk.start_char < end


def spans_to_chunks(spans: Iterable[tuple[int, int]], chunks: Sequence[Chunk]) -> list[int]:
    """Indices of the chunks that overlap any of the half-open character spans ``[start, end)``.

    Args:
        spans: ``(start_char, end_char)`` pairs in the coordinates of the chunked document.
        chunks: the output of :func:`chunk_text` for that document.

    Returns:
        Sorted, distinct chunk indices; a span that falls between chunks (only whitespace)
        maps to none.

    Raises:
        ValueError: for a span with ``end < start`` or a negative start.
    """
    hits: set[int] = set()
    for start, end in spans:
        if start < 0 or end < start:
            raise ValueError(f"expected a character span with 0 <= start <= end, got ({start}, {end})")
        hits.update(i for i, chunk in enumerate(chunks) if _overlaps(start, end, chunk))
    return sorted(hits)
