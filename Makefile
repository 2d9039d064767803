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

.PHONY: install demo demo-data test lint format clean-demo benchmark-gpu

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

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test: lint
	$(BIN)/pytest

# Every GPU benchmark in order (benchmarks/gpu.sh: SEEDS, STEPS, DATA as environment variables).
benchmark-gpu: $(STAMP)
	PYTHON=$(BIN)/python bash benchmarks/gpu.sh

clean-demo:
	rm -rf data/demo
