# tagtune developer loop. Everything runs from a local virtualenv (.venv) made by `make install`.
# torch is pinned here (not in pyproject.toml) so that this machine's CPU build is used, with the
# torchcodec build that matches it (datasets >= 4 decodes audio through it; newer torchcodec wheels
# on PyPI are CUDA builds). On a GPU machine install your CUDA torch first and run `pip install -e ".[dev]"`.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0 torchcodec==0.13.0
EXTRAS ?= dev,eval,hub,slurm,ray
DEMO_DIR ?= demo
# test processes (pytest-xdist; the tests of one file stay in one process); 0 runs the suite in this one
PYTEST_WORKERS ?= 2

.PHONY: help install demo test test-fast lint bench bench-quick docs wheel clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/tagtune: pyproject.toml
	bash scripts/install-ffmpeg.sh   # FFmpeg's libraries where we may (root with apt); otherwise one line says what to run
	bash scripts/install-chromium.sh # Chromium for the report page's browser test, the same way
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH) -e ".[$(EXTRAS)]"
	@touch $@

install: $(BIN)/tagtune  ## create .venv and install tagtune with its dev/eval extras

demo: install  ## the main job, offline on CPU: run the demo pipeline into ./demo
	$(BIN)/tagtune pipeline run --preset demo -o $(DEMO_DIR)

test: install  ## the whole test suite (what CI runs), on $(PYTEST_WORKERS) processes
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test-fast: install  ## unit tests only (skips the slow end-to-end runs)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not slow"

lint: install  ## ruff, and the import contracts of pyproject.toml (lint-imports)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/lint-imports

bench: install  ## run every benchmark and rewrite docs/benchmarks.md
	$(BIN)/python benchmarks/run_all.py

bench-quick: install  ## smoke-run the benchmarks (seconds each), print instead of writing
	$(BIN)/python benchmarks/run_all.py --quick --print

docs: install  ## regenerate docs/cli.md, docs/configuration.md and the matrix in docs/reliability.md
	$(BIN)/python scripts/gen_docs.py
	$(BIN)/python tests/reliability/matrix.py --write

wheel: install  ## build the wheel into dist/
	$(BIN)/python -m pip wheel . --no-deps -w dist

clean:  ## remove build and test artefacts (keeps .venv)
	rm -rf build dist .pytest_cache .ruff_cache outputs src/*.egg-info
