# selfheal — every target is idempotent; `make install` only does what is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=
# Lint tools for the Dockerfile and the CI workflow, in their own venv (requirements-tools.txt).
TOOLS  := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
# Container image: DOCKER=podman works too; TORCH_INDEX = PyTorch's CPU-only wheel index.
DOCKER ?= docker
IMAGE  ?= selfheal
TORCH_INDEX ?=

.PHONY: help install run run-cli train train-voter ship eval stats dashboard serve test lint format bench demo demo-gif clean \
	package-model docker-build docker-run

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m selfheal.model.embedder
	$(BIN)/selfheal export-onnx  # model.runtime's ONNX files into the cache (else made on first use)
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install everything (once)

$(TOOLS_STAMP): requirements-tools.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q -r requirements-tools.txt
	@touch $(TOOLS_STAMP)

run: install  ## interactive CLI on the shipped model
	$(BIN)/selfheal run $(ARGS)

run-cli: run  ## alias of run

train: install  ## train with config.yaml into runs/latest (ARGS="--set key=value ...")
	$(BIN)/selfheal train $(ARGS)

train-voter: install  ## train the no-person voter (mpnet_top) into runs/latest
	$(BIN)/selfheal train-voter --checkpoint runs/latest $(ARGS)

ship: install  ## copy runs/latest into the package as the shipped checkpoint
	$(BIN)/python scripts/ship_checkpoint.py runs/latest

eval: install  ## evaluate on the held-out test split, regenerate EVALUATION.md
	$(BIN)/selfheal eval $(ARGS)

stats: install  ## fallback analytics from logs/app.jsonl
	$(BIN)/selfheal stats $(ARGS)

serve: install  ## the HTTP API on http://127.0.0.1:8000 (ARGS="--db postgresql://... --port 8001")
	$(BIN)/selfheal serve $(ARGS)

dashboard: install  ## the reviewer's dashboard on http://127.0.0.1:8501 (ARGS="--port 8502 --set key=value")
	$(BIN)/selfheal dashboard $(ARGS)

test: install  ## run the test suite
	$(BIN)/python -m pytest -q $(ARGS)

lint: install $(TOOLS_STAMP)  ## ruff, hadolint Dockerfile, CI workflow and compose file schemas, environment.yml up to date
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(TOOLS)/bin/hadolint Dockerfile
	$(TOOLS)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml
	$(TOOLS)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(BIN)/python scripts/make_environment.py --check

environment.yml: requirements.txt requirements-nodeps.txt scripts/make_environment.py  ## regenerate the conda file
	$(BIN)/python scripts/make_environment.py

package-model: install  ## the shipped model as dist/selfheal-<version>.zip (ARGS="--set paths.checkpoint=runs/latest")
	$(BIN)/selfheal package-model $(ARGS)

docker-build:  ## build the container image (DOCKER=podman, TORCH_INDEX=<CPU wheel index>, ARGS=extra flags)
	$(DOCKER) build $(if $(TORCH_INDEX),--build-arg PIP_EXTRA_INDEX_URL=$(TORCH_INDEX)) -t $(IMAGE) $(ARGS) .

docker-run:  ## the interactive CLI in the container
	$(DOCKER) run -it --rm $(IMAGE)

format: install  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests scripts benchmarks
	$(BIN)/ruff format src tests scripts benchmarks

bench: install  ## issue 14's speed ratios and the time to the first prompt, vs baselines measured in the same run
	$(BIN)/python benchmarks/bench_speed.py $(ARGS)
	$(BIN)/python benchmarks/bench_startup.py

$(VENV)/.demo-installed: requirements-demo.txt $(STAMP)
	$(BIN)/python -m pip install -q -r requirements-demo.txt
	@touch $@

demo: install $(VENV)/.demo-installed  ## record demos/demo.cast (real CLI in asciinema rec) and demos/demo.gif
	$(BIN)/python scripts/record_demo.py --gif demos/demo.gif $(ARGS)

demo-gif: install $(VENV)/.demo-installed  ## re-render demos/demo.gif from demos/demo.cast
	$(BIN)/python scripts/record_demo.py --render-only --gif demos/demo.gif

clean:  ## remove caches (keeps .venv, logs and checkpoints)
	rm -rf .pytest_cache .ruff_cache build src/*.egg-info
