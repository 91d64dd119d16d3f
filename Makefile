# Set-up and everyday commands. Every target creates .venv and installs the project
# (with its test tools) first if that has not been done for this pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/open-strawberry demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples docs
	$(BIN)/mypy
	$(BIN)/mypy examples

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/runtime.py
	$(BIN)/python benchmarks/clients.py
	$(BIN)/python benchmarks/rate_limits.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/exports.py
	$(BIN)/python benchmarks/calibration.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache out
