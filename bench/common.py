"""Helpers every bench script shares: the command line, the machine, BENCHMARKS.md, the RESULT line.

A bench script prints the command it ran, the machine it ran on and its numbers, appends a dated
section to ``BENCHMARKS.md`` (never rewriting what others wrote) and ends with one line that
starts with ``RESULT:`` holding its headline figures::

    from common import ROOT, append_benchmarks, command_line, describe_machine, machine, result_line

    info = machine()
    print(f"command: {command_line(__file__)}")
    print(f"machine: {describe_machine(info)}")
    ...
    append_benchmarks(section_text)
    print(result_line("quality (quick)", {"uae recall@1": 0.61}))
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
SHARED_DATA = Path(os.environ.get("UAE_SHARED_DATA", ROOT.parent / "shared" / "data"))
"""The real datasets beside the checkout (``../shared/data``)."""
HEADER = "# Benchmarks\n\nWritten by the scripts under bench/; each section is one run.\n"


def command_line(script: str | os.PathLike, argv: list[str] | None = None) -> str:
    """``python bench/<script> <args>`` as the user typed it, quoted for a shell."""
    args = sys.argv[1:] if argv is None else argv
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(script, ROOT), *args])


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def cpu_flags(wanted: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")) -> list[str]:
    """Which of ``wanted`` the CPU advertises (they decide which kernels torch can use)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = set(next(line for line in handle if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return []
    return [flag for flag in wanted if flag in flags]


def machine() -> dict:
    """Cores, CPU model and flags, torch and Python versions, GPU (if any), load average now."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        **_library_versions("transformers", "sentence_transformers", "faiss"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "gpu": gpu,
        "load_average": os.getloadavg()[0],
    }


def _library_versions(*names: str) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = "not installed"
    return versions


def describe_machine(info: Mapping) -> str:
    """One line on the machine, saying how loaded it was (other engineers share it)."""
    flags = ", ".join(info.get("cpu_flags") or []) or "no AVX flags"
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU"
    return (f"{info['cores']} cores ({info['cpu']}; {flags}){gpu}, torch {info['torch']} "
            f"({info['torch_threads']} threads), Python {info['python']}; load average {info['load_average']:.1f} "
            "at the start (a shared machine: other engineers' jobs ran at the same time, so absolute times are "
            "slower and noisier than on a quiet machine)")


def append_benchmarks(text: str, path: str | os.PathLike = BENCHMARKS) -> Path:
    """Append ``text`` (a dated section) to ``BENCHMARKS.md``, creating it with a header if missing."""
    path = Path(path)
    with open(path, "a", encoding="utf-8") as handle:
        if handle.tell() == 0:
            handle.write(HEADER)
        handle.write("\n" + text.strip("\n") + "\n")
    return path


def section_heading(title: str, quick: bool = False) -> str:
    """``## <title> (quick), YYYY-MM-DD HH:MM``: a dated heading for one run."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"## {title}{' (quick)' if quick else ''}, {stamp}"


def result_line(label: str, figures: Mapping[str, float | str]) -> str:
    """``RESULT: <label>: name value, name value``; floats are written with 4 decimals."""
    parts = [f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}" for name, value in figures.items()]
    return f"RESULT: {label}: " + ", ".join(parts)
