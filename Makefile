# Steward: two commands do all set-up on a fresh Debian machine (as root, or with sudo):
#   make demo   - create .venv, install, run the whole pipeline on embedded defaults
#   make test   - install what the tests need (apt + pip), then ruff, mypy --strict and pytest
.PHONY: demo test check pytest venv system-deps clean

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	scripts/install-system-deps

demo: system-deps $(STAMP)
	$(BIN)/python scripts/demo.py

check: $(STAMP)
	scripts/check

pytest: $(STAMP)
	scripts/test

test: system-deps $(STAMP)
	scripts/check
	scripts/test

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
