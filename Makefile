# Every target bootstraps .venv when it is missing or older than pyproject.toml.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN    ?= demo
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test lab clean-outputs mutate

TORCH  := torch==2.13.0
# PyTorch's CPU wheels, given to pip as an extra index only where a 5-second probe reaches it
# (tools/cpu_torch_index.py); elsewhere torch comes from the default index at no extra cost.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# No CUDA here: the +cpu build of torch first, so nothing pulls the CUDA wheels (gigabytes).
	@if ! command -v nvidia-smi >/dev/null 2>&1; then \
	  $(PY) -m pip install -q $(TORCH) $$($(PY) tools/cpu_torch_index.py $(TORCH_CPU_INDEX)); fi
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

# prometheus-eval's own prompt texts, to compare with the ones 06 carries (tests/test_judging_prometheus.py);
# reference material only, never imported (the package needs litellm and vllm). Offline: those tests skip.
PROMETHEUS_EVAL := prometheus-eval==0.1.20
REFDIR := $(VENV)/reference
$(REFDIR)/.unpacked: | $(STAMP)
	@mkdir -p $(REFDIR)
	@if $(PY) -m pip download -q --no-deps -d $(REFDIR) $(PROMETHEUS_EVAL) 2>/dev/null; then \
	  $(PY) -m zipfile -e $(REFDIR)/prometheus_eval-*.whl $(REFDIR) && touch $@; \
	else echo "note: $(PROMETHEUS_EVAL) could not be downloaded; the prompt comparison tests will skip"; fi

# The real tokenizers the params name, for tests/test_real_tokenizers.py, without the Hub: Llama 3's tiktoken BPE
# from Meta's llama-models wheel, Mistral's v1 SentencePiece model (Mixtral / Prometheus 2 8x7B) from mistral-common's.
# Files only, never imported; not committed. Offline: those tests skip and say why.
TOKENIZER_PACKAGES := llama-models==0.3.0 mistral-common==1.13.1
TOKDIR := $(REFDIR)/tokenizers
$(TOKDIR)/.unpacked: | $(STAMP)
	@mkdir -p $(TOKDIR)
	@if $(PY) -m pip download -q --no-deps -d $(TOKDIR) $(TOKENIZER_PACKAGES) 2>/dev/null; then \
	  for w in $(TOKDIR)/*.whl; do $(PY) -m zipfile -e $$w $(TOKDIR); done && touch $@; \
	else echo "note: $(TOKENIZER_PACKAGES) could not be downloaded; the real-tokenizer tests will skip"; fi

demo: setup  ## build the tiny model and run every notebook at size=tiny into outputs/tiny/$(RUN)/
	$(PY) -m med42_utils.runner --size tiny --run-name $(RUN)

# Two pytest-xdist workers: the suite's two long groups (every test on the shared tiny run of the notebooks, every
# test on the real SLURM cluster) run side by side, each session fixture built once (tests/conftest.py,
# xdist_group_of). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: setup $(REFDIR)/.unpacked $(TOKDIR)/.unpacked  ## the whole pytest suite (offline)
	PROMETHEUS_EVAL_SRC=$(REFDIR) MED42_TOKENIZER_PACKAGES=$(TOKDIR) $(PY) -m pytest \
	  $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup)

# Mutation testing of one module against its own tests (not part of `make test` or .ci/run; docs/testing.md):
#   make mutate MODULE=med42_utils/data/dedup.py
mutate: setup
	@test -n "$(MODULE)" || { echo "usage: make mutate MODULE=med42_utils/data/dedup.py (modules: pyproject.toml [tool.med42.mutation.modules])" >&2; exit 2; }
	$(PY) -m pip install -q -e ".[mutation]"
	$(PY) tools/mutate.py $(MODULE) $(if $(TESTS),--tests $(TESTS))

lab: setup
	$(PY) -m pip install -q -e ".[lab]"
	$(VENV)/bin/jupyter lab notebooks/

clean-outputs:
	find outputs -mindepth 1 -not -name .gitkeep -delete
