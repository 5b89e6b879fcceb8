"""QMSum (Zhong et al., NAACL 2021): query-based summaries of long meeting transcripts.

Reads the official JSON lines (``data/ALL/jsonl/{train,val,test}.jsonl``, optionally gzipped;
one meeting per line: ``meeting_transcripts: [{speaker, content}]``, ``specific_query_list:
[{query, answer, relevant_text_span: [["start", "end"], ...]}]``, ``general_query_list``).

Mapping to the schema:

- **passages**: a meeting is written as one text, a line ``Speaker: content`` per turn, and
  cut into overlapping chunks of ``chunk_tokens`` words (:func:`uae.data.chunking.chunk_text`);
  ``doc_id`` = meeting. Meetings are named by ``meeting_id`` where the line has one, else by
  ``<split>-<line>`` (the official val/test files carry no name).
- **queries**: the specific queries, scoped to their meeting by default; the reference
  summary ``answer`` is the gold answer.
- **qrels**: a ``relevant_text_span`` is an inclusive range of turn indices; the chunks that
  overlap the words of those turns (speaker labels aside) get grade 1.
- **general queries** ("summarise the whole meeting") have no evidence span: counted and skipped.

Splits come from the file names (train / val -> dev / test); ``split=`` overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uae.data.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, chunk_text, spans_to_chunks
from uae.data.loaders.common import DatasetBuilder, Loaded, Source, field, read_jsonl, source_files, split_from_name, unique_texts
from uae.data.schema import Passage, Query
from uae.errors import DataError

PATTERNS = ("train.jsonl*", "val.jsonl*", "test.jsonl*")


def transcript_text(turns: list[Any], path: Path, where: str) -> tuple[str, list[tuple[int, int]]]:
    """The meeting as text, one ``Speaker: content`` line per turn, and each turn's content span.

    The spans leave out the ``Speaker:`` label, so a chunk that ends on the label of the
    first gold turn is not counted as holding evidence.
    """
    lines, spans, offset = [], [], 0
    for number, turn in enumerate(turns):
        speaker = field(turn, "speaker", str, path, f"{where}, turn {number}").strip()
        content = field(turn, "content", str, path, f"{where}, turn {number}").strip()
        line = f"{speaker}: {content}" if speaker else content
        lines.append(line)
        spans.append((offset + len(line) - len(content), offset + len(line)))
        offset += len(line) + 1
    return "\n".join(lines), spans


def turn_ranges(query: dict[str, Any], n_turns: int, path: Path, where: str) -> list[tuple[int, int]]:
    """The query's ``relevant_text_span`` as inclusive ``(first, last)`` turn indices, checked."""
    ranges = []
    for item in field(query, "relevant_text_span", list, path, where):
        try:
            first, last = (int(x) for x in item)
        except (TypeError, ValueError):
            raise DataError(path, None, f"{where}: expected a span [\"start\", \"end\"] of turn indices, found {item!r}") from None
        if not 0 <= first <= last < n_turns:
            raise DataError(path, None, f"{where}: expected turn span within 0..{n_turns - 1}, found {item!r}")
        ranges.append((first, last))
    return ranges


def _meeting(builder: DatasetBuilder, meeting_id: str, record: dict[str, Any], split: str, options: dict[str, Any], path: Path, where: str) -> None:
    text, turn_spans = transcript_text(field(record, "meeting_transcripts", list, path, where), path, where)
    chunks = chunk_text(text, options["chunk_tokens"], options["chunk_overlap"])
    ids = [f"{meeting_id}#{n}" for n in range(len(chunks))]
    for pid, chunk in zip(ids, chunks):
        builder.add_passage(Passage(pid, chunk.text, "", meeting_id), path, where)
    for number, _ in enumerate(record.get("general_query_list") or []):
        builder.skip("question: general query (whole meeting, no evidence span)", f"{meeting_id}-g{number}")
    for number, query in enumerate(field(record, "specific_query_list", list, path, where)):
        qid, qwhere = f"{meeting_id}-s{number}", f"{where}, specific query {number}"
        ranges = turn_ranges(query, len(turn_spans), path, qwhere)
        relevant = [ids[i] for i in spans_to_chunks([(turn_spans[a][0], turn_spans[b][1]) for a, b in ranges], chunks)]
        answers = unique_texts([field(query, "answer", str, path, qwhere)])
        if not answers:
            builder.skip("question: no answer text", qid)
        elif not relevant:
            builder.skip("question: no evidence span", qid)
        else:
            text = field(query, "query", str, path, qwhere).strip()
            builder.add_query(Query(qid, text, answers, meeting_id if options["scoped"] else None), split, relevant, path, qwhere)


def load(source: Source, *, chunk_tokens: int = DEFAULT_MAX_TOKENS, chunk_overlap: int = DEFAULT_OVERLAP,
         scoped: bool = True, split: str | None = None) -> Loaded:
    """Load QMSum meetings, chunked into passages.

    Args:
        source: a file, a list of files, or a folder with ``train/val/test.jsonl[.gz]``.
        chunk_tokens: words per passage.
        chunk_overlap: words shared by consecutive passages.
        scoped: retrieve inside the query's meeting (default) instead of every meeting.
        split: put every query in this split instead of the one named by its file.
    """
    builder = DatasetBuilder("qmsum")
    options = {"chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap, "scoped": scoped}
    files = source_files(source, PATTERNS, "QMSum")
    for path in files:
        name = split or split_from_name(path)
        for number, record in read_jsonl(path):
            meeting_id = str(record.get("meeting_id") or f"{split_from_name(path)}-{number:03d}")
            _meeting(builder, meeting_id, record, name, options, path, f"line {number} (meeting {meeting_id})")
    return builder.build(files[0])
