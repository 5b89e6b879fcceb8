"""Natural Questions through QED (Lamm et al., TACL 2021): real search queries with their gold
Wikipedia paragraph.

Reads QED JSON lines (``.jsonl``, ``.jsonlines``, optionally gzipped) in both schemas:

- final release (``qed-dev.jsonlines``, ``qed-train.jsonlines``): ``example_id``,
  ``title_text``, ``question_text``, ``paragraph_text``, ``original_nq_answers`` (one list of
  ``{start, end, string}`` spans per NQ annotator);
- initial release (``nq-train-0N-qed.jsonlines``): the same but ``answer_text`` (the spans of
  one answer) instead of ``original_nq_answers``.

Mapping to the schema:

- **passages**: the gold paragraphs, titled by their Wikipedia page, ``doc_id`` = page title.
  A paragraph shared by several questions is one passage (id ``nq<example_id>`` of the first).
  Some NQ long answers are whole tables or lists (5% exceed 256 words, the longest 7,395);
  ``chunk_tokens=N`` cuts paragraphs into N-word chunks (ids ``nq<example_id>#<k>``) and
  the chunks overlapping the answer spans become the gold passages.
- **answers**: each annotator's short answer; an answer made of several spans (a list answer)
  is joined with ", ".
- **qrels**: grade 1 on the question's paragraph. There is no distractor pool in the source:
  the other questions' paragraphs are the negatives. Retrieval is corpus-wide by default.
- questions without a short answer are counted and skipped.

Splits come from the file names (train / dev); ``split=`` overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uae.data.chunking import DEFAULT_OVERLAP, chunk_text, spans_to_chunks
from uae.data.loaders.common import DatasetBuilder, Loaded, Source, field, read_jsonl, source_files, split_from_name, unique_texts
from uae.data.schema import Passage, Query
from uae.errors import DataError

PATTERNS = ("*qed*.jsonl", "*qed*.jsonlines", "*qed*.jsonl.gz", "*qed*.jsonlines.gz")


def answers_of(record: dict[str, Any], path: Path, where: str) -> tuple[str, ...]:
    """Short answers of a record in either QED schema (multi-span answers joined with ", ")."""
    if "original_nq_answers" in record:
        annotators = field(record, "original_nq_answers", list, path, where)
        texts = [", ".join(field(span, "string", str, path, where).strip() for span in spans) for spans in annotators]
    else:
        texts = [", ".join(t.strip() for t in field(record, "answer_text", list, path, where))]
    return unique_texts(texts)


def answer_spans(record: dict[str, Any], path: Path, where: str) -> list[tuple[int, int]]:
    """Character spans of every short answer in ``paragraph_text`` (either QED schema)."""
    if "original_nq_answers" in record:
        spans = [span for spans in record["original_nq_answers"] for span in spans]
        return [(field(s, "start", int, path, where), field(s, "end", int, path, where)) for s in spans]
    pairs = field(record, "answer_spans", list, path, where)
    if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) for x in p) for p in pairs):
        raise DataError(path, None, f"{where}: expected 'answer_spans' as [[start, end], ...], found {pairs!r}")
    return [(start, end) for start, end in pairs]


class _Paragraphs:
    """Gold paragraphs, one passage (or one run of chunks) per distinct (page, text)."""

    def __init__(self, builder: DatasetBuilder, chunk_tokens: int | None, chunk_overlap: int):
        self.builder = builder
        self.chunking = (chunk_tokens, chunk_overlap)
        self.seen: dict[tuple[str, str], tuple[str, list]] = {}

    def gold(self, record: dict[str, Any], path: Path, where: str) -> list[str]:
        """Passage ids that hold the record's answers (adding the paragraph the first time)."""
        title = field(record, "title_text", str, path, where)
        text = field(record, "paragraph_text", str, path, where)
        key = (title, text)
        if key not in self.seen:
            self.seen[key] = self._add(f"nq{record['example_id']}", title, text, path, where)
        base, chunks = self.seen[key]
        if self.chunking[0] is None:
            return [base]
        return [f"{base}#{k}" for k in spans_to_chunks(answer_spans(record, path, where), chunks)]

    def _add(self, base: str, title: str, text: str, path: Path, where: str) -> tuple[str, list]:
        if self.chunking[0] is None:
            self.builder.add_passage(Passage(base, text.strip(), title, title), path, where)
            return base, []
        chunks = chunk_text(text, *self.chunking)
        for k, chunk in enumerate(chunks):
            self.builder.add_passage(Passage(f"{base}#{k}", chunk.text, title, title), path, where)
        return base, chunks


def load(source: Source, *, chunk_tokens: int | None = None, chunk_overlap: int = DEFAULT_OVERLAP,
         scoped: bool = False, split: str | None = None) -> Loaded:
    """Load QED / Natural Questions records.

    Args:
        source: a file, a list of files, or a folder with ``*qed*.jsonl[ines][.gz]`` files.
        chunk_tokens: cut paragraphs into chunks of this many words (default: keep them whole).
        chunk_overlap: words shared by consecutive chunks.
        scoped: retrieve inside the question's Wikipedia page (one or two paragraphs; only
            useful for inspection) instead of the whole corpus.
        split: put every question in this split instead of the one named by its file.
    """
    builder = DatasetBuilder("nq-qed")
    paragraphs = _Paragraphs(builder, chunk_tokens, chunk_overlap)
    files = source_files(source, PATTERNS, "QED")
    for path in files:
        for number, record in read_jsonl(path):
            where = f"line {number}"
            qid = str(field(record, "example_id", (int, str), path, where))
            question = field(record, "question_text", str, path, where).strip()
            answers = answers_of(record, path, where)
            if not answers:
                builder.skip("question: no short answer", qid)
                continue
            gold = paragraphs.gold(record, path, where)
            if not gold:
                builder.skip("question: answer spans outside the paragraph", qid)
                continue
            doc_id = builder.passages[gold[0]].doc_id if scoped else None
            builder.add_query(Query(qid, question, answers, doc_id), split or split_from_name(path), gold, path, where)
    return builder.build(files[0])
