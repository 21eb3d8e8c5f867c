# Each target creates its own virtual environment and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
RUNTIME_STAMP := $(VENV)/.installed-runtime

.PHONY: test lint typecheck contracts pytest demo conformance clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo needs only the runtime dependencies; a venv that has the dev install has them too.
$(RUNTIME_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $(RUNTIME_STAMP); else \
	  set -e; \
	  $(PYTHON) -m venv $(VENV); \
	  $(PY) -m pip install --quiet --upgrade pip; \
	  $(PY) -m pip install --quiet -e .; \
	  touch $(RUNTIME_STAMP); fi

# serves examples/news from a temporary directory, feeds it 100,000 documents, queries it, stops it
demo: $(RUNTIME_STAMP)
	$(VENV)/bin/tensorrank demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy tensor_ir cpu_fallback
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

pytest: $(STAMP)
	$(PY) -m pytest

conformance: $(STAMP)
	$(VENV)/bin/tensorrank conformance --backend cpu

clean:
	rm -rf $(VENV) build *.egg-info
