# selfheal — every target is idempotent; `make install` only does what is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: help install run run-cli train ship eval stats test lint format bench demo demo-gif clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m selfheal.model.embedder
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install everything (once)

run: install  ## interactive CLI on the shipped model
	$(BIN)/selfheal run $(ARGS)

run-cli: run  ## alias of run

train: install  ## train with config.yaml into runs/latest (ARGS="--set key=value ...")
	$(BIN)/selfheal train $(ARGS)

ship: install  ## copy runs/latest into the package as the shipped checkpoint
	$(BIN)/python scripts/ship_checkpoint.py runs/latest

eval: install  ## evaluate on the held-out test split, regenerate EVALUATION.md
	$(BIN)/selfheal eval $(ARGS)

stats: install  ## fallback analytics from logs/app.jsonl
	$(BIN)/selfheal stats $(ARGS)

test: install  ## run the test suite
	$(BIN)/python -m pytest -q $(ARGS)

lint: install  ## ruff lint + format check
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks

format: install  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests scripts benchmarks
	$(BIN)/ruff format src tests scripts benchmarks

bench: install  ## time to the first prompt vs baselines measured in the same run
	$(BIN)/python benchmarks/bench_startup.py $(ARGS)

$(VENV)/.demo-installed: requirements-demo.txt $(STAMP)
	$(BIN)/python -m pip install -q -r requirements-demo.txt
	@touch $@

demo: install $(VENV)/.demo-installed  ## record demos/demo.cast (real CLI in asciinema rec) and demos/demo.gif
	$(BIN)/python scripts/record_demo.py --gif demos/demo.gif $(ARGS)

demo-gif: install $(VENV)/.demo-installed  ## re-render demos/demo.gif from demos/demo.cast
	$(BIN)/python scripts/record_demo.py --render-only --gif demos/demo.gif

clean:  ## remove caches (keeps .venv, logs and checkpoints)
	rm -rf .pytest_cache .ruff_cache build src/*.egg-info
