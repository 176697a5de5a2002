# Steward: two commands do all set-up on a fresh Debian machine (as root, or with sudo):
#   make demo   - install Mosquitto and socat (apt) and .venv with the runtime extras (edge, sim),
#                 then run the whole pipeline on embedded defaults
#   make test   - install what the tests need (apt + pip .[dev]), then ruff, mypy --strict and pytest
# Both also run `make assets`: the console's JavaScript packages from npm (the committed lockfile)
# copied into cloud_ingest/console/static/vendor/, which the application serves itself.
.PHONY: demo test check pytest venv venv-runtime system-deps system-deps-demo assets clean

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
FORMER_NAME := steward
ASSETS := cloud_ingest/console/assets
VENDOR := cloud_ingest/console/static/vendor
ASSETS_STAMP := $(VENDOR)/.installed
# The distribution's name before it became steward-iot: an editable install of this clone under
# that name is removed first, so the two do not both claim the same console scripts.
DROP_FORMER = if $(BIN)/pip show $(FORMER_NAME) 2>/dev/null | grep -qx 'Editable project location: $(CURDIR)'; \
	then $(BIN)/pip uninstall -q -y $(FORMER_NAME); fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# What the demo runs: the agent and the simulators (.[dev] includes them, so it satisfies this too).
$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(DROP_FORMER)
	$(BIN)/pip install -q -e '.[edge,sim]'
	touch $@

# Everything the checks and tests use.
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(DROP_FORMER)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(RUNTIME_STAMP)

venv: $(DEV_STAMP)

venv-runtime: $(RUNTIME_STAMP)

# The console's vendored JavaScript: exactly the lockfile's versions, no install scripts run.
$(ASSETS_STAMP): $(ASSETS)/package.json $(ASSETS)/package-lock.json
	scripts/console-assets

assets: $(ASSETS_STAMP)

system-deps:
	scripts/install-system-deps test

system-deps-demo:
	scripts/install-system-deps demo

demo: system-deps-demo $(RUNTIME_STAMP) $(ASSETS_STAMP)
	$(BIN)/python scripts/demo.py

check: $(DEV_STAMP)
	scripts/check

pytest: $(DEV_STAMP) $(ASSETS_STAMP)
	scripts/test

test: system-deps $(DEV_STAMP) $(ASSETS_STAMP)
	scripts/check
	scripts/test

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache $(VENDOR) $(ASSETS)/node_modules
