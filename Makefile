# Each target creates its own virtual environment and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: test lint typecheck contracts pytest demo conformance clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

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
