# The two quickstart commands: `make demo` and `make test`. Each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := data/demo/01_raw/HAM10000
DEMO_IMAGES ?= 400

export KEDRO_DISABLE_TELEMETRY := true
export PYTHONUNBUFFERED := 1

.PHONY: install demo demo-data test test-lowest lint format clean-demo benchmark-gpu

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo-data: $(STAMP)
	$(BIN)/python -m skin_lesion.demo $(DEMO_DIR) --images $(DEMO_IMAGES) --seed 0 --replace

demo: demo-data
	$(BIN)/kedro run --env demo
	@echo "Report: data/demo/08_reporting/report.html (outputs under data/demo/; add --env demo to kedro commands to use them)"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test: lint
	$(BIN)/pytest

# The suite on the lowest versions pyproject.toml allows for each direct dependency (uv's
# lowest-direct resolution; their own dependencies resolve to the newest that fit), in a second
# environment, .venv-lowest, so that every floor in pyproject.toml is one that was tested.
LOWEST := .venv-lowest
test-lowest: $(STAMP)
	$(BIN)/pip install --quiet "uv>=0.5"
	$(BIN)/uv pip compile --quiet pyproject.toml --extra test --resolution lowest-direct \
		--python $(BIN)/python -o $(LOWEST).txt
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(BIN)/uv pip sync --quiet --python $(LOWEST)/bin/python $(LOWEST).txt
	$(BIN)/uv pip install --quiet --python $(LOWEST)/bin/python --no-deps -e .
	$(LOWEST)/bin/python -m pytest

# Every GPU benchmark in order (benchmarks/gpu.sh: SEEDS, STEPS, DATA as environment variables).
benchmark-gpu: $(STAMP)
	PYTHON=$(BIN)/python bash benchmarks/gpu.sh

clean-demo:
	rm -rf data/demo
