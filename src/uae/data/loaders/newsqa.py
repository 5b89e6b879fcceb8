"""NewsQA (Trischler et al., 2017): crowd questions on CNN stories, answered by story spans.

Reads the official processed file ``combined-newsqa-data-v1.json`` built by the Maluuba
scripts (github.com/Maluuba/newsqa): ``{"data": [{"storyId", "text", "type", "questions":
[{"q", "consensus": {"s", "e"} | {"badQuestion": true} | {"noAnswer": true}, ...}]}]}``,
where ``s`` is inclusive and ``e`` exclusive character offsets into ``text``.

Mapping to the schema:

- **passages**: each story cut into overlapping chunks of ``chunk_tokens`` words;
  ``doc_id`` = story (the file name of ``storyId`` without ``.story``).
- **answers**: the consensus span's text (the README's "best continuous answer span"; the
  individual crowd answers are not used).
- **qrels**: grade 1 on the chunks that overlap the consensus span.
- **queries**: scoped to their story by default.
- questions whose consensus is ``badQuestion`` or ``noAnswer`` are counted and skipped.

Splits come from each story's ``type`` (train / dev / test); ``split=`` overrides.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from uae.data.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, Chunk, chunk_text, spans_to_chunks
from uae.data.loaders.common import DatasetBuilder, Loaded, Source, field, read_json, source_files
from uae.data.schema import Passage, Query
from uae.errors import DataError

PATTERNS = ("combined-newsqa-data-*.json",)


def story_doc_id(story_id: str) -> str:
    """``./cnn/stories/<hash>.story`` -> ``<hash>``."""
    return PurePosixPath(story_id).stem or story_id


def _consensus_span(question: dict[str, Any], text: str, path: Path, where: str) -> tuple[int, int] | str:
    """The consensus span, or the reason the question has none."""
    consensus = field(question, "consensus", dict, path, where)
    if consensus.get("badQuestion"):
        return "question: bad question (consensus)"
    if consensus.get("noAnswer"):
        return "question: no answer in story (consensus)"
    start, end = field(consensus, "s", int, path, where), field(consensus, "e", int, path, where)
    if not 0 <= start < end <= len(text):
        raise DataError(path, None, f"{where}: expected consensus 0 <= s < e <= {len(text)}, found s={start}, e={end}")
    return start, end


def _question(builder: DatasetBuilder, question: dict[str, Any], text: str, chunks: list[Chunk], doc_id: str,
              qid: str, split: str, scoped: bool, path: Path, where: str) -> None:
    span = _consensus_span(question, text, path, where)
    if isinstance(span, str):
        builder.skip(span, qid)
        return
    answer = text[span[0] : span[1]].strip()
    relevant = [f"{doc_id}#{i}" for i in spans_to_chunks([span], chunks)]
    if not answer or not relevant:
        builder.skip("question: consensus span is blank", qid)
        return
    query = Query(qid, field(question, "q", str, path, where).strip(), (answer,), doc_id if scoped else None)
    builder.add_query(query, split, relevant, path, where)


def _story(builder: DatasetBuilder, story: dict[str, Any], index: int, options: dict[str, Any], path: Path) -> None:
    story_id = field(story, "storyId", str, path, f"story {index}")
    where = f"story {story_id}"
    text = field(story, "text", str, path, where)
    doc_id = story_doc_id(story_id)
    chunks = chunk_text(text, options["chunk_tokens"], options["chunk_overlap"])
    for number, chunk in enumerate(chunks):
        builder.add_passage(Passage(f"{doc_id}#{number}", chunk.text, "", doc_id), path, where)
    split = options["split"] or story.get("type") or "all"
    for number, question in enumerate(field(story, "questions", list, path, where)):
        qid = f"{doc_id}-q{number}"
        _question(builder, question, text, chunks, doc_id, qid, split, options["scoped"], path, f"{where}, question {number}")


def load(source: Source, *, chunk_tokens: int = DEFAULT_MAX_TOKENS, chunk_overlap: int = DEFAULT_OVERLAP,
         scoped: bool = True, split: str | None = None) -> Loaded:
    """Load NewsQA from ``combined-newsqa-data-v1.json``.

    Args:
        source: the file or the folder holding it.
        chunk_tokens: words per passage.
        chunk_overlap: words shared by consecutive passages.
        scoped: retrieve inside the question's story (default) instead of every story.
        split: put every question in this split instead of the story's ``type``.
    """
    builder = DatasetBuilder("newsqa")
    options = {"chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap, "scoped": scoped, "split": split}
    files = source_files(source, PATTERNS, "NewsQA")
    for path in files:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise DataError(path, None, "expected the NewsQA layout: {\"data\": [stories], \"version\"}")
        for index, story in enumerate(data["data"]):
            _story(builder, story, index, options, path)
    return builder.build(files[0])
