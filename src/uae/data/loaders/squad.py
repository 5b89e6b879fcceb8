"""SQuAD v1.1 and v2.0 (Rajpurkar et al., 2016 and 2018): questions on Wikipedia paragraphs.

Reads the official JSON layout ``{"version", "data": [{"title", "paragraphs": [{"context",
"qas": [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}``,
from one file or several (the shared copy of the v1.1 dev set comes in two parts).

Mapping to the schema:

- **passages**: paragraphs, id ``<title>#<n>``, titled by the article (underscores as spaces),
  ``doc_id`` = article title.
- **queries**: every question with an answer; the crowd answers, deduplicated, are its
  answers. Retrieval is corpus-wide by default (``scoped=True`` restricts it to the article).
- **qrels**: grade 1 on the question's own paragraph.
- **unanswerable** (v2.0 ``is_impossible``): counted and skipped.

Splits come from the file names (train / dev / test); ``split=`` overrides.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from uae.data.loaders.common import DatasetBuilder, Loaded, Source, field, read_json, source_files, split_from_name, unique_texts
from uae.data.schema import Passage, Query
from uae.errors import DataError

PATTERNS = ("*.json",)
_WORD = re.compile(r"\w", re.UNICODE)


def _question(builder: DatasetBuilder, qa: dict[str, Any], passage: Passage, split: str, scoped: bool, path: Path, where: str) -> None:
    qid = str(field(qa, "id", (str, int), path, where))
    where = f"{where}, question {qid}"
    text = field(qa, "question", str, path, where).strip()
    if qa.get("is_impossible"):
        builder.skip("question: unanswerable (v2.0 is_impossible)", qid)
        return
    texts = [field(a, "text", str, path, where) for a in field(qa, "answers", list, path, where)]
    wordless = [t for t in texts if t.strip() and not _WORD.search(t)]
    if wordless:  # e.g. "." among the crowd answers of 3 v1.1 dev questions: nothing a teacher can score
        builder.skip("answer: no letter or digit (the question keeps its other answers)", qid)
    answers = unique_texts(t for t in texts if t not in wordless)
    if not answers:
        builder.skip("question: no answer text", qid)
        return
    builder.add_query(Query(qid, text, answers, passage.doc_id if scoped else None), split, [passage.id], path, where)


def _article(builder: DatasetBuilder, article: dict[str, Any], split: str, scoped: bool, path: Path, index: int) -> None:
    title = field(article, "title", str, path, f"article {index}")
    where = f"article {title!r}"
    for number, paragraph in enumerate(field(article, "paragraphs", list, path, where)):
        context = field(paragraph, "context", str, path, f"{where}, paragraph {number}")
        pid = f"{title}#{number}"
        qas = field(paragraph, "qas", list, path, f"{where}, paragraph {number}")
        if not context.strip():
            builder.skip("passage: empty paragraph", pid)
            for qa in qas:
                builder.skip("question: its paragraph is empty", str(qa.get("id")))
            continue
        passage = Passage(pid, context, title.replace("_", " "), title)
        builder.add_passage(passage, path, f"{where}, paragraph {number}")
        for qa in qas:
            _question(builder, qa, passage, split, scoped, path, f"{where}, paragraph {number}")


def load(source: Source, *, version: str | None = None, scoped: bool = False, split: str | None = None) -> Loaded:
    """Load SQuAD v1.1 / v2.0 from one or more official JSON files.

    Args:
        source: a file, a list of files (e.g. the two halves of the v1.1 dev set), or a folder.
        version: ``v1.1`` or ``v2.0``: in a folder, read only the files whose name has it.
        scoped: retrieve inside the question's article instead of the whole corpus.
        split: put every question in this split instead of the one named by its file.
    """
    builder = DatasetBuilder(f"squad-{version}" if version else "squad")
    files = source_files(source, (f"*{version}*.json",) if version else PATTERNS, "SQuAD")
    for path in files:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise DataError(path, None, "expected the SQuAD layout: {\"version\", \"data\": [articles]}")
        for index, article in enumerate(data["data"]):
            _article(builder, article, split or split_from_name(path), scoped, path, index)
    return builder.build(files[0])
