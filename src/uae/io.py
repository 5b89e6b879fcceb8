"""Atomic file writes: write beside the target under a temporary name, then rename over it.

A reader (or a rerun after a crash) sees the old file or the new one, never half of one, because
``os.replace`` within a folder is atomic. Every stage writes its files through these helpers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def fsync_path(path: str | os.PathLike) -> None:
    """Flush ``path`` (a file or a folder) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write (``path`` with ``.tmp`` appended); when the block ends without error it replaces ``path``.

    For writers that need a path of their own (pyarrow, FAISS). The parent folder is created.

    Args:
        path: The file to replace.
        durable: fsync the new file before the rename and the folder after it, so the new
            version survives a power cut (index files, whose ``meta.json`` is a commit point).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing behind, not even its temporary file
        raise
    if durable:
        fsync_path(tmp)
    os.replace(tmp, path)
    if durable:
        fsync_path(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = False) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; returns ``path``."""
    with atomic_path(path, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike, payload: Any, durable: bool = False) -> Path:
    """Replace ``path`` with ``payload`` as indented JSON (values JSON cannot hold written as ``str``)."""
    return atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n", durable)
