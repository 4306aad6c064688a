# The two commands in the README: `make run` and `make test`. `make lint` runs what CI runs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bootstrap format clean rasa chromium

# Create .venv and install the product with its dev tools. torch comes first, pinned to the
# CPU build, or sentence-transformers would pull a multi-GB CUDA build.
# `python -m pip`, not .venv/bin/pip: a script's shebang may name another checkout's venv
# (e.g. a .venv copied or cloned along), and pip would then install into that one.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

bootstrap: $(STAMP)

## Start the product on its embedded defaults (SQLite, demo data, no token needed).
run: $(STAMP)
	$(BIN)/python -m app.cli start

## The Rasa NLU service's own Python 3.10 virtualenv (.venv-rasa; ~2 min the first time,
## a quick check when it is already complete). The rasa-marked tests need it.
rasa: $(STAMP)
	$(BIN)/hwcrm nlu setup

## Debian's chromium for the console's browser tests (Playwright drives /usr/bin/chromium;
## it never downloads a browser). Installs as root with apt-get when it is missing.
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium; }

## The whole test suite (PostgreSQL and Redis must be running, as on CI).
test: $(STAMP) rasa chromium
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
