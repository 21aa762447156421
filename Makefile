# Every target bootstraps .venv itself: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup demo test lint screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU wheel of torch first, pinned: an unpinned torch would pull the CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,dev]'
	# DeepSpeed (strategy deepspeed; its tests skip without it) is an sdist built against the
	# torch above: without --no-build-isolation pip would fetch another torch to build it.
	$(BIN)/pip install -q --no-build-isolation -e '.[deepspeed]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	RLHF_DEV=1 $(BIN)/rlhf db upgrade
	RLHF_DEV=1 $(BIN)/rlhf demo
	RLHF_DEV=1 $(BIN)/rlhf serve --host $(HOST) --port $(PORT) --with-worker

test: setup
	$(BIN)/pytest -q

screenshots: setup
	$(BIN)/python scripts/screenshots.py

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

clean:
	rm -rf $(VENV) rlhf.db artifacts
