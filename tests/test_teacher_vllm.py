"""The vllm teacher without vLLM installed: a clear message saying how to install it."""

from __future__ import annotations

import sys

import pytest

from uae.teachers import load_teacher


def test_missing_vllm_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"pip install 'uae\[vllm\]'"):
        load_teacher("vllm:Qwen/Qwen2.5-0.5B")


def test_vllm_spec_needs_a_model() -> None:
    with pytest.raises(ValueError, match="vllm:"):
        load_teacher("vllm:")
