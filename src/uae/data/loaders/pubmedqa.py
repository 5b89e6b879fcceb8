"""PubMedQA PQA-L (Jin et al., EMNLP 2019): biomedical research questions on PubMed abstracts.

Reads ``ori_pqal.json`` (``{pmid: {QUESTION, CONTEXTS, LABELS, LONG_ANSWER, final_decision,
...}}``) and, when it sits next to it, ``test_ground_truth.json`` (``{pmid: label}``, the
official 500-question test set).

Mapping to the schema:

- **passages**: each abstract section in ``CONTEXTS`` (id ``<pmid>#<n>``), ``doc_id`` = PMID.
  The section labels (BACKGROUND, METHODS...) are not used as titles: they say where a
  sentence sits, not what it is about.
- **queries**: ``QUESTION`` (the article title as a question), corpus-wide by default.
- **answer**: ``LONG_ANSWER`` (the abstract's conclusion) by default. For utility labelling the
  answer's likelihood must depend on the passage: a one-token yes/no/maybe mostly measures
  the teacher's prior for "yes" (55% of PQA-L) and its NLL is noisy, while the conclusion
  restates the findings that the contexts support. ``answer="decision"`` uses the
  yes/no/maybe label instead, ``answer="both"`` gives both as two gold answers.
- **qrels**: grade 1 on every context of the question's abstract (all of them are evidence).

Splits: with ``test_ground_truth.json``, its 500 PMIDs are ``test`` and the other 500 ``train``
(the official split; its 10 CV folds are all train). Without it, every question is in ``all``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uae.data.loaders.common import DatasetBuilder, Loaded, Source, field, read_json, source_files, unique_texts
from uae.data.schema import Passage, Query
from uae.errors import DataError

PATTERNS = ("ori_pqal.json",)
TEST_IDS_FILE = "test_ground_truth.json"
ANSWER_CHOICES = ("long", "decision", "both")


def _test_ids(files: list[Path], explicit: Path | None) -> set[str] | None:
    path = explicit or next((f.parent / TEST_IDS_FILE for f in files if (f.parent / TEST_IDS_FILE).is_file()), None)
    if path is None:
        return None
    data = read_json(Path(path))
    if not isinstance(data, dict):
        raise DataError(path, None, "expected {pmid: label} for the official test set")
    return {str(pmid) for pmid in data}


def _answers(record: dict[str, Any], answer: str, path: Path, where: str) -> tuple[str, ...]:
    long_answer = field(record, "LONG_ANSWER", str, path, where) if answer != "decision" else ""
    decision = field(record, "final_decision", str, path, where) if answer != "long" else ""
    return unique_texts([long_answer, decision])


def _record(builder: DatasetBuilder, pmid: str, record: Any, split: str, answer: str, scoped: bool, path: Path) -> None:
    where = f"PMID {pmid}"
    if not isinstance(record, dict):
        raise DataError(path, None, f"{where}: expected an object, found {type(record).__name__}")
    contexts = field(record, "CONTEXTS", list, path, where)
    relevant = []
    for number, context in enumerate(contexts):
        if not isinstance(context, str):
            raise DataError(path, None, f"{where}: expected CONTEXTS to be strings, found {context!r}")
        if not context.strip():
            builder.skip("passage: empty context", f"{pmid}#{number}")
            continue
        builder.add_passage(Passage(f"{pmid}#{number}", context.strip(), "", pmid), path, where)
        relevant.append(f"{pmid}#{number}")
    answers = _answers(record, answer, path, where)
    if not answers:
        builder.skip("question: no answer text", pmid)
    elif not relevant:
        builder.skip("question: no context", pmid)
    else:
        question = field(record, "QUESTION", str, path, where).strip()
        builder.add_query(Query(pmid, question, answers, pmid if scoped else None), split, relevant, path, where)


def load(source: Source, *, answer: str = "long", scoped: bool = False, test_ids: str | Path | None = None, split: str | None = None) -> Loaded:
    """Load PubMedQA PQA-L.

    Args:
        source: ``ori_pqal.json`` or the folder holding it (and ``test_ground_truth.json``).
        answer: ``long`` (the conclusion, default), ``decision`` (yes/no/maybe) or ``both``.
        scoped: retrieve inside the question's own abstract instead of the pooled corpus.
        test_ids: the official test-set file, when it is not next to ``ori_pqal.json``.
        split: put every question in this split instead of test/train.
    """
    if answer not in ANSWER_CHOICES:
        raise ValueError(f"PubMedQA answer must be one of {ANSWER_CHOICES}, got {answer!r}")
    builder = DatasetBuilder("pubmedqa")
    files = source_files(source, PATTERNS, "PubMedQA")
    test = _test_ids(files, Path(test_ids) if test_ids else None)
    for path in files:
        data = read_json(path)
        if not isinstance(data, dict):
            raise DataError(path, None, "expected {pmid: record} as in ori_pqal.json")
        for pmid, record in data.items():
            name = split or ("all" if test is None else "test" if pmid in test else "train")
            _record(builder, str(pmid), record, name, answer, scoped, path)
    return builder.build(files[0])
