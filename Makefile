# Two entry points for a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: quickstart test install install-test clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# Pinned first: the CPU build is local here; an unpinned torch pulls CUDA wheels.
	$(PIP) install -q torch==2.13.0
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PIP) install -q -e ".[train]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e ".[train,test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

quickstart: install
	$(VENV)/bin/uae quickstart

test: install-test
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
