"""The datasets ``uae`` can load by name: where the official files are, and which loader reads them.

Checksums are SHA-256. ``RemoteFile.sha256`` is given where the exact official bytes are
known (pinned commits whose files we hold); ``known_copies`` lists the checksums of the
partial or repackaged copies described in each ``SOURCE.md`` of the shared data folder, so a
local copy given with ``--from`` is verified too. ``None`` means no checksum is published and
none could be measured here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
_QED = "https://raw.githubusercontent.com/google-research-datasets/QED/2492920337122918bbfc7d12c1268b9af796c6cf"
_PUBMEDQA = "https://raw.githubusercontent.com/pubmedqa/pubmedqa/1cbae8e92f72f20c8d3747cbb3bf5bc53554d997/data"
_QMSUM = "https://raw.githubusercontent.com/Yale-LILY/QMSum/83d7768c1f2b4dfeb091385d3dc7e239b8e5bb7e/data/ALL/jsonl"
_SQUAD = "https://rajpurkar.github.io/SQuAD-explorer/dataset"
_QASPER = "https://qasper-dataset.s3.us-west-2.amazonaws.com"


@dataclass(frozen=True)
class RemoteFile:
    """One official file; archives (``.tgz``, ``.zip``) are extracted after download."""

    url: str
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetInfo:
    """What ``uae data list`` shows and what ``download`` / ``prepare`` need."""

    name: str
    description: str
    loader: str
    """Module under ``uae.data.loaders`` whose ``load(source, **options)`` reads the files."""
    files: tuple[RemoteFile, ...] = ()
    license: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    known_copies: dict[str, str] = field(default_factory=dict)
    """``{file name: sha256}`` of the copies in the shared data folder (see its SOURCE.md)."""
    manual: str | None = None
    """Why and how to fetch by hand, when the files cannot be downloaded automatically."""


DATASETS: dict[str, DatasetInfo] = {
    "qasper": DatasetInfo(
        "qasper", "QASPER: questions on NLP papers; paragraphs of the paper, annotators' evidence as gold.", "qasper",
        (RemoteFile(f"{_QASPER}/qasper-train-dev-v0.3.tgz"), RemoteFile(f"{_QASPER}/qasper-test-and-evaluator-v0.3.tgz")),
        "CC BY 4.0",
        known_copies={
            "qasper_sample_small.json": "942ce1c63822568da0d77ddcbdcfa6f469dad17336cf003fee0e9dbd010ee9ba",
            "qasper-hf-train-first10papers.jsonl": "2bc724a86d84851042322fd5cba8ae439b5fc995e66525a0cdc35c9e9fcf8a59",
        },
    ),
    "squad-v1.1": DatasetInfo(
        "squad-v1.1", "SQuAD v1.1: crowd questions on Wikipedia paragraphs; the question's paragraph is gold.", "squad",
        (RemoteFile(f"{_SQUAD}/train-v1.1.json"), RemoteFile(f"{_SQUAD}/dev-v1.1.json")),
        "CC BY-SA 4.0", {"version": "v1.1"},
        known_copies={
            "squad-v1.1-dev-part1.json": "bf8ebb60a161d0594f455be869ff3a476d2fe07da92ab1ecb0dea41f50ea64f3",
            "squad-v1.1-dev-part2.json": "f0a16b507dbb983d1a04315b6a189e539aa15c91c4ccfb849b0392593daf80dd",
        },
    ),
    "squad-v2.0": DatasetInfo(
        "squad-v2.0", "SQuAD v2.0: SQuAD v1.1 plus unanswerable questions (counted and skipped).", "squad",
        (RemoteFile(f"{_SQUAD}/train-v2.0.json"), RemoteFile(f"{_SQUAD}/dev-v2.0.json")),
        "CC BY-SA 4.0", {"version": "v2.0"},
        known_copies={"squad-v2.0-dev-half.json": "e67e5969b6dc6c1642154740806b79263b77fc048c7c11ee60d534eb48ef81e8"},
    ),
    "nq-qed": DatasetInfo(
        "nq-qed", "Natural Questions via QED: real search queries with their gold Wikipedia paragraph.", "nq_qed",
        (RemoteFile(f"{_QED}/qed-train.jsonlines"),
         RemoteFile(f"{_QED}/qed-dev.jsonlines", "2ea322b71a333023380c3954083b81af2d5670c8ac47ddec58c843233895c429")),
        "CC BY-SA 3.0",
        known_copies={
            "qed-dev.jsonl": "2ea322b71a333023380c3954083b81af2d5670c8ac47ddec58c843233895c429",
            "qed-train-initial-shards.jsonl.gz": "4505938a1c1b6489d2cdf0bd25ae05cba72aa25326045d7512bc9fa40ab2bd2c",
        },
    ),
    "pubmedqa": DatasetInfo(
        "pubmedqa", "PubMedQA PQA-L: biomedical questions; abstract sections as passages, conclusion as answer.", "pubmedqa",
        (RemoteFile(f"{_PUBMEDQA}/ori_pqal.json", "8b3276be8942ebbd77f3ddcda12c1749bf0e490045a736fd8438ee40cf37a41d"),
         RemoteFile(f"{_PUBMEDQA}/test_ground_truth.json", "939fe566f09017d13b1ca64d2ddfee0bc2374b366048152997669cccedc44d51")),
        "MIT",
    ),
    "qmsum": DatasetInfo(
        "qmsum", "QMSum: queries on long meeting transcripts, chunked; chunks overlapping gold turn spans are gold.", "qmsum",
        (RemoteFile(f"{_QMSUM}/train.jsonl"),
         RemoteFile(f"{_QMSUM}/val.jsonl", "fc7444e241bdbe6997c01720d07f1a58b7357284acb73f909766e5a4700db49f"),
         RemoteFile(f"{_QMSUM}/test.jsonl", "6bcd428211260ad2efae3af76cbaf6a7f5ae4bb5e1e59c45a4b8e89539cb9208")),
        "MIT",
        known_copies={"train.jsonl.gz": "c19ce2c30f3d945df40a314c67343c6c75774485700dc56bdd6075f5b0ce61a3"},
    ),
    "newsqa": DatasetInfo(
        "newsqa", "NewsQA: crowd questions on CNN stories, chunked; chunks overlapping the consensus span are gold.", "newsqa",
        (), "MIT (code); CNN stories by permission of CNN, not redistributable",
        manual=(
            "NewsQA cannot be downloaded automatically: the questions are behind Microsoft's licence page "
            "(https://www.microsoft.com/en-us/research/project/newsqa-dataset/) and the CNN stories must be fetched "
            "separately (https://cs.nyu.edu/~kcho/DMQA/). Build combined-newsqa-data-v1.json with the official "
            "scripts (https://github.com/Maluuba/newsqa), then pass it with --from."
        ),
    ),
    "beir": DatasetInfo(
        "beir", "Your own data: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) plus an optional answers file.",
        "beir_folder", (), "yours",
        manual="Pass your folder with --from, or download a public BEIR set as beir/<name> (e.g. beir/scifact).",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; ``beir/<set>`` names one of the public BEIR zips.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name in DATASETS:
        return DATASETS[name]
    if name.startswith("beir/") and name[5:] and "/" not in name[5:]:
        beir = DATASETS["beir"]
        return DatasetInfo(name, f"BEIR {name[5:]} (official zip)", beir.loader, (RemoteFile(BEIR_URL.format(name=name[5:])),),
                           "see the BEIR set's own licence")
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} and beir/<name>")
