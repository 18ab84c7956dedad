# Every target bootstraps .venv when it is missing or older than pyproject.toml.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN    ?= demo
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test lab clean-outputs

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# No CUDA here: take the CPU build first so nothing pulls the CUDA wheels.
	@if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup  ## build the tiny model and run every notebook at size=tiny into outputs/tiny/$(RUN)/
	$(PY) -m med42_utils.runner --size tiny --run-name $(RUN)

test: setup  ## the whole pytest suite (offline)
	$(PY) -m pytest

lab: setup
	$(PY) -m pip install -q -e ".[lab]"
	$(VENV)/bin/jupyter lab notebooks/

clean-outputs:
	find outputs -mindepth 1 -not -name .gitkeep -delete
