# Each target sets up its own virtualenv in .venv, so a fresh clone needs only python3, pip and make.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint typecheck unit clean

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

serve: $(BIN)/.installed
	scripts/install-deps.sh
	$(BIN)/octotrio serve $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# The real-client tests need the npm packages and Chromium: the script installs what is missing.
# The conformance test against OctoPrint needs OctoPrint 1.11.8 in .octoprint-venv (installed once).
unit: $(BIN)/.installed
	scripts/install-deps.sh --chromium
	scripts/install-octoprint.sh
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
