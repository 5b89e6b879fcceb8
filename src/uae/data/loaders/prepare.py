"""Turn a dataset's raw files into the BEIR folder with answers that every ``uae`` stage reads.

Besides ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``, the folder gets
``prepared.json``: the dataset, source, options, sizes and the counts of what was skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from uae.data.beir import write_dataset
from uae.data.schema import SkipReport
from uae.io import atomic_write_json

MANIFEST = "prepared.json"


def parse_value(text: str) -> Any:
    """``true``/``false`` -> bool, ``none`` -> None, numbers -> int/float, anything else stays text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_options(items: Iterable[str]) -> dict[str, Any]:
    """``["scoped=false", "chunk_tokens=200"]`` -> ``{"scoped": False, "chunk_tokens": 200}``.

    Raises:
        ValueError: for an item without ``=``.
    """
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected a loader option as KEY=VALUE, got {item!r}")
        options[key.strip().replace("-", "_")] = parse_value(value)
    return options


def refuse_overwriting_source(source: str | os.PathLike | list | None, out: str | os.PathLike) -> None:
    """Refuse an ``--out`` folder that is (or holds) the raw files being read: preparing would rewrite them in place.

    Raises:
        ValueError: ``out`` is a ``--from`` folder, or the folder of a ``--from`` file.
    """
    sources = source if isinstance(source, (list, tuple)) else [] if source is None else [source]
    target = Path(out).resolve()
    for item in map(Path, sources):
        item = item.resolve()
        if target in (item, item.parent if item.is_file() else item):
            raise ValueError(f"--out {out} is where the --from files are ({item}); preparing would rewrite them in place, "
                             f"with no backup. Expected another folder for --out")


def prepare(name: str, source: str | os.PathLike | None, out: str | os.PathLike, *, resplit: bool | None = None,
            seed: int = 13, **options: Any) -> dict[str, Any]:
    """Load ``name`` from ``source`` and write it as a BEIR folder with answers to ``out``.

    Args:
        name: a registry name (see ``uae.data.loaders.DATASETS``).
        source: the raw files; ``None`` for the folder ``uae data download`` fills.
        out: the folder to write.
        resplit: as in :func:`uae.data.loaders.load_named` (``None``: split by document only
            when the source lacks train or test).
        seed: seed of the split by document.
        **options: loader options.

    Returns:
        The manifest written to ``prepared.json`` (sizes and skip counts included).
    """
    from uae.data.loaders import dataset_stats, load_named

    refuse_overwriting_source(source, out)
    skipped = SkipReport()
    dataset = load_named(name, source, resplit=resplit, seed=seed, skipped=skipped, **options)
    out = Path(out)
    write_dataset(dataset, out)
    manifest = {
        "dataset": name,
        "source": None if source is None else str(source),
        "options": options,
        "resplit": resplit,
        "seed": seed,
        "stats": dataset_stats(dataset),
        "skipped": skipped.to_dict(),
        "skipped_examples": skipped.examples,
    }
    atomic_write_json(out / MANIFEST, manifest)
    manifest["skip_lines"] = skipped.lines()
    return manifest
