"""Fetch a dataset's official files (checked against their SHA-256), or copy a local copy.

Downloads stream to ``<file>.part`` and are renamed only once complete and verified, so an
interrupted download never leaves a file that looks whole. Archives are extracted next to
themselves with path checks (no member may land outside the target folder).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from uae.data.loaders.registry import DatasetInfo, RemoteFile, dataset_info
from uae.errors import DownloadError

DATA_HOME_ENV = "UAE_DATA_HOME"


@dataclass(frozen=True)
class Fetched:
    """One file placed in the output folder, and how its checksum came out."""

    path: Path
    check: str
    """``verified``, ``no checksum known`` or ``extracted``."""


def data_home() -> Path:
    """Where datasets go by default: ``$UAE_DATA_HOME`` or ``~/.cache/uae/datasets``."""
    return Path(os.environ.get(DATA_HOME_ENV, "~/.cache/uae/datasets")).expanduser()


def default_folder(name: str) -> Path:
    """The default folder of dataset ``name`` under :func:`data_home`."""
    return data_home() / name


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, expected: str | None, origin: str) -> str:
    if expected is None:
        return "no checksum known"
    actual = sha256_of(path)
    if actual != expected:
        raise DownloadError(f"{origin}: sha256 {actual} does not match the expected {expected}")
    return "verified"


def _extract(archive: Path, out: Path) -> None:
    """Extract a ``.tgz``/``.tar.gz``/``.zip`` into ``out``, refusing members that escape it."""
    root = out.resolve()
    if archive.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
    elif archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                if not (root / member).resolve().is_relative_to(root):
                    raise DownloadError(f"{archive}: member {member!r} would be written outside {out}")
            zipped.extractall(out)


def _fetch(remote: RemoteFile, out: Path) -> Fetched:
    target = out / remote.filename
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(remote.url, timeout=60) as response, open(partial, "wb") as handle:
            shutil.copyfileobj(response, handle, 1 << 20)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{remote.url}: download failed ({err})") from None
    try:
        check = _verify(partial, remote.sha256, remote.url)
    except DownloadError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return Fetched(target, check)


def _copy_local(info: DatasetInfo, source: Path, out: Path) -> list[Fetched]:
    """Copy the files of ``source`` (a file or a folder, not recursive) into ``out``, verifying known ones."""
    if not source.exists():
        raise DownloadError(f"{source}: no such file or folder")
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file())
    if not files:
        raise DownloadError(f"{source}: expected the {info.name} files, found an empty folder")
    expected = {remote.filename: remote.sha256 for remote in info.files}
    expected.update({name: sha for name, sha in info.known_copies.items() if sha})
    fetched = []
    for path in files:
        check = _verify(path, expected.get(path.name), str(path))
        target = out / path.name
        if path.resolve() != target.resolve():
            shutil.copyfile(path, target)
        fetched.append(Fetched(target, check))
    return fetched


def download(name: str, out: Path | None = None, source: Path | None = None) -> list[Fetched]:
    """Put the raw files of dataset ``name`` into ``out`` (default :func:`default_folder`).

    Args:
        name: a registry name (see ``DATASETS``) or ``beir/<set>``.
        out: destination folder, created if needed.
        source: a local copy (file or folder) to copy and verify instead of downloading.

    Returns:
        The files placed in ``out`` with the outcome of their checksum.

    Raises:
        DownloadError: when a download fails, a checksum differs, or the dataset can only
            be fetched by hand (the message says how).
    """
    info = dataset_info(name)
    out = Path(out) if out is not None else default_folder(name)
    out.mkdir(parents=True, exist_ok=True)
    if source is not None:
        return _copy_local(info, Path(source), out)
    if not info.files:
        raise DownloadError(info.manual or f"{name} has no downloadable files")
    fetched = []
    for remote in info.files:
        item = _fetch(remote, out)
        fetched.append(item)
        if remote.filename.endswith((".tgz", ".tar.gz", ".zip")):
            _extract(item.path, out)
            fetched.append(Fetched(out, "extracted"))
    return fetched
