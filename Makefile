# ftkit developer entry points. `make test` and `make quickstart` install first when .venv is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned to the exact build these machines carry as a local CPU wheel; any other torch spec
# would make pip fetch a CUDA build of several GB. The supported range lives in pyproject.toml.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test test-slow lint format quickstart bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]" "$(TORCH_SPEC)"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

quickstart: $(STAMP)
	$(BIN)/ftkit train examples/quickstart.yaml train.overwrite_output_dir=true
	$(BIN)/ftkit export examples/quickstart.yaml --force
	$(BIN)/ftkit generate examples/quickstart.yaml --input examples/quickstart_prompts.jsonl

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/training.py
	$(BIN)/python bench/streaming.py

docs: $(STAMP)
	$(BIN)/python -m ftkit.reference > docs/recipe-reference.md

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
