# glassbox — each stage is one Hydra entry point and one target.
#   make prepare train analyze                  the default experiment (西游记, the article's model)
#   make prepare train analyze EXPERIMENT=tiny  the whole pipeline in under a minute on a CPU
#   make explore                                the run explorer: <run>/report/explorer.html, open it from disk
#   make sample ARGS="prompt=悟空道"            text from the latest run, with prefill/decode tokens/s
#   make train ARGS="model=tiny train.max_iters=50"   any Hydra override goes in ARGS
#   make prepare train analyze CORPUS=local ARGS="corpus.path=notes.txt"   a text file of your own
#   make help                                   every target in one line
#   make replicate EXPERIMENT=tiny SEEDS=1,2    every claim judged over seeds (default 1,2,3)
#   make test                                   the whole test suite, as CI runs it
#   make test-fast                              the tests not marked slow or e2e: the edit loop

# CORPUS=local (a text file of your own, ARGS="corpus.path=<file>") runs experiment local, named after the file.
EXPERIMENT ?= $(if $(filter local,$(CORPUS)),local,xiyouji)
CORPUS ?=
SEEDS ?= 1,2,3
ARGS ?=
# More pytest options for make test / test-fast, e.g. PYTEST_ARGS="--durations=15 -x".
PYTEST_ARGS ?=
# Test processes at once (pytest-xdist; each test file stays in one process). Tests run torch on one thread
# (tests/conftest.py), so two processes fill 2 cores; TEST_WORKERS=0 runs them in this process, one by one.
TEST_WORKERS ?= 2
PYTEST_XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel lies on this machine's disk; on a GPU machine use e.g. TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAGE_ARGS = experiment=$(EXPERIMENT) $(if $(CORPUS),corpus=$(CORPUS)) $(ARGS)

.PHONY: help install prepare train analyze explore trace sample steer patch scope ablate export inspect inspect-hf sweep replicate test test-fast lint format benchmark clean

# `make help`: every target with its `## ` description.
help:  ## this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: EXPERIMENT=$(EXPERIMENT) (tiny, shakespeare, ...; local with CORPUS=local), CORPUS, ARGS (any Hydra"
	@echo "override), SWEEP, LAUNCHER. Each stage's options: .venv/bin/glassbox-<stage> --help"

install: $(VENV)/.installed  ## create .venv and install glassbox in it (every target does this first)

# Created on first use and reused; rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,launchers,interop]"
	touch $@

prepare: install  ## corpus → data/processed/<corpus>/ (CORPUS=local ARGS="corpus.path=<file>": your own text)
	$(PY) -m glassbox.prepare $(STAGE_ARGS)

train: install  ## train, recording the emergence metrics at every snapshot: outputs/<experiment>/<time>/
	$(PY) -m glassbox.train $(STAGE_ARGS)

analyze: install  ## the analysis suites over every snapshot, and the report: <run>/report/report.md
	$(PY) -m glassbox.analyze $(STAGE_ARGS)

# Redraws <run>/report/explorer.html from the run's analysis.json (analyze writes it too); ARGS="run=<dir>".
explore: install  ## redraw <run>/report/explorer.html, the interactive page of an analysed run
	$(PY) -m glassbox.explore $(STAGE_ARGS)

trace: install  ## one prediction of a snapshot, stage by stage (ARGS="prompt=悟空道 step=0")
	$(PY) -m glassbox.trace $(STAGE_ARGS)

# Text from the latest run's last snapshot, then prefill and decode tokens/s (nanoGPT's sample.py):
#   make sample ARGS="prompt=悟空道 num_samples=5 top_p=0.9"     (step=, run=, checkpoint=, sampler=greedy, ...)
sample: install  ## text from a snapshot (nanoGPT's sample.py), with prefill and decode tokens/s
	$(PY) -m glassbox.sample $(STAGE_ARGS)

# Interventions on a snapshot (ARGS: run=, step=, or step=all for every snapshot), written to
# <run>/interventions/<steer|patch|ablate>/<time>/ (report.md, results.json, metrics.jsonl, W&B):
#   make steer                                    a "speech follows" direction (corpus.steering) against random ones
#   make patch ARGS="source=悟空道 target=修道 layer=all position=-1"
#   make scope ARGS="step=all"                    Patch Scope: hidden states continued from, per layer
#   make ablate ARGS="mode=zero"                  every attention head knocked out in turn
steer: install  ## a steering direction, its effect against random directions of the same norm
	$(PY) -m glassbox.steer $(STAGE_ARGS)

patch: install  ## one prompt's hidden state patched into another's run, layer by layer
	$(PY) -m glassbox.patch $(STAGE_ARGS)

scope: install  ## Patch Scope: each layer's hidden state continued from in a neutral and an identity prompt
	$(PY) -m glassbox.scope $(STAGE_ARGS)

ablate: install  ## every attention head ablated in turn: which heads the loss needs
	$(PY) -m glassbox.ablate $(STAGE_ARGS)

# A snapshot as a Hugging Face / TransformerLens / nanoGPT folder: <run>/export/step-N/ (ARGS="step=all": every one).
export: install  ## a snapshot as a Hugging Face / TransformerLens / nanoGPT folder: <run>/export/step-N/
	$(PY) -m glassbox.export $(STAGE_ARGS)

inspect: install  ## a snapshot's model printed: every module, parameter shapes and counts, totals by kind
	$(PY) -m glassbox.inspect_model $(STAGE_ARGS)

# The snapshot-free suites on a local Hugging Face causal LM or a folder of its step_N/ checkpoints:
#   make inspect-hf ARGS="hf.path=outputs/tiny/latest/export" EXPERIMENT=tiny
inspect-hf: install  ## the snapshot-free suites on a local Hugging Face model (ARGS="hf.path=<folder>")
	$(PY) -m glassbox.inspect_hf $(STAGE_ARGS)

# A Hydra multirun of train, one W&B group per sweep; summary.md, summary.json and plots land in
# outputs/<experiment>/sweeps/<time>/ (again by hand: python -m glassbox.sweep <that directory>).
#   make sweep EXPERIMENT=tiny SWEEP="model.n_layer=2,4 model.n_embd=64,128 seed=1,2,3"
#   SWEEP: the swept overrides (default: the three model sizes).
#   LAUNCHER: unset = one job after another; parallel = local processes (joblib); slurm = a cluster.
sweep: install  ## a Hydra multirun of train (SWEEP="model.n_layer=2,4 seed=1,2"), then its summary
	$(PY) -m glassbox.train --multirun $(STAGE_ARGS) $(if $(LAUNCHER),hydra/launcher=$(LAUNCHER)) $(if $(SWEEP),$(SWEEP),model=tiny,seed,big)

# The experiment trained once per seed (a sweep over seed alone, one job after another; LAUNCHER as for sweep),
# then every claim judged in every seed: replicate.md, replicate.json and plots in the sweep directory, a W&B
# run (job_type replicate), outputs/<experiment>/replicate/latest, which the single-run report quotes.
#   make replicate EXPERIMENT=shakespeare SEEDS=1,2,3,4 LAUNCHER=parallel
#   again by hand: python -m glassbox.replicate outputs/<experiment>/sweeps/<time>
replicate: install  ## every claim judged over seeds: a sweep over seed alone (SEEDS=1,2,3)
	$(PY) -m glassbox.train --multirun $(STAGE_ARGS) hydra/callbacks=replicate $(if $(LAUNCHER),hydra/launcher=$(LAUNCHER)) seed=$(SEEDS)

test: install  ## the whole test suite, as CI runs it (PYTEST_ARGS: more pytest options)
	$(PY) -m pytest -q $(PYTEST_XDIST) $(PYTEST_ARGS)

test-fast: install  ## the tests not marked slow or e2e, in about a minute: the edit loop
	$(PY) -m pytest -q -m "not slow and not e2e" $(PYTEST_XDIST) $(PYTEST_ARGS)

# ruff (configured in pyproject.toml): lint and format check, as CI runs them; `make format` fixes.
lint: install  ## ruff check and format check of src, tests and scripts, as CI runs them
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

format: install  ## fix what ruff can: lint fixes and formatting
	$(VENV)/bin/ruff check --fix src tests scripts
	$(VENV)/bin/ruff format src tests scripts

benchmark: install  ## tokens/s, MFU, the emergence metrics' cost and the KV cache's decode speed-up (scripts/benchmark.py)
	$(PY) scripts/benchmark.py $(ARGS)

clean:  ## delete outputs/*/ and data/processed (the corpus cache data/raw stays)
	rm -rf outputs/*/ data/processed
