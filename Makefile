# glassbox — each stage is one Hydra entry point and one target.
#   make prepare train analyze                  the default experiment (西游记, the article's model)
#   make prepare train analyze EXPERIMENT=tiny  the whole pipeline in under a minute on a CPU
#   make explore                                the run explorer: <run>/report/explorer.html, open it from disk
#   make train ARGS="model=tiny train.max_iters=50"   any Hydra override goes in ARGS
#   make test                                   the test suite

EXPERIMENT ?= xiyouji
CORPUS ?=
ARGS ?=
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel lies on this machine's disk; on a GPU machine use e.g. TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAGE_ARGS = experiment=$(EXPERIMENT) $(if $(CORPUS),corpus=$(CORPUS)) $(ARGS)

.PHONY: install prepare train analyze explore trace steer patch ablate export inspect-hf sweep test benchmark clean

install: $(VENV)/.installed

# Created on first use and reused; rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,launchers,interop]"
	touch $@

prepare: install
	$(PY) -m glassbox.prepare $(STAGE_ARGS)

train: install
	$(PY) -m glassbox.train $(STAGE_ARGS)

analyze: install
	$(PY) -m glassbox.analyze $(STAGE_ARGS)

# Redraws <run>/report/explorer.html from the run's analysis.json (analyze writes it too); ARGS="run=<dir>".
explore: install
	$(PY) -m glassbox.explore $(STAGE_ARGS)

trace: install
	$(PY) -m glassbox.trace $(STAGE_ARGS)

# Interventions on a snapshot (ARGS: run=, step=, or step=all for every snapshot), written to
# <run>/interventions/<steer|patch|ablate>/<time>/ (report.md, results.json, metrics.jsonl, W&B):
#   make steer                                    a "speech follows" direction (corpus.steering) against random ones
#   make patch ARGS="source=悟空道 target=修道 layer=all position=-1"
#   make ablate ARGS="mode=zero"                  every attention head knocked out in turn
steer: install
	$(PY) -m glassbox.steer $(STAGE_ARGS)

patch: install
	$(PY) -m glassbox.patch $(STAGE_ARGS)

ablate: install
	$(PY) -m glassbox.ablate $(STAGE_ARGS)

# A snapshot as a Hugging Face / TransformerLens / nanoGPT folder: <run>/export/step-N/ (ARGS="step=all": every one).
export: install
	$(PY) -m glassbox.export $(STAGE_ARGS)

# The snapshot-free suites on a local Hugging Face causal LM or a folder of its step_N/ checkpoints:
#   make inspect-hf ARGS="hf.path=outputs/tiny/latest/export" EXPERIMENT=tiny
inspect-hf: install
	$(PY) -m glassbox.inspect_hf $(STAGE_ARGS)

# A Hydra multirun of train, one W&B group per sweep; summary.md, summary.json and plots land in
# outputs/<experiment>/sweeps/<time>/ (again by hand: python -m glassbox.sweep <that directory>).
#   make sweep EXPERIMENT=tiny SWEEP="model.n_layer=2,4 model.n_embd=64,128 seed=1,2,3"
#   SWEEP: the swept overrides (default: the three model sizes).
#   LAUNCHER: unset = one job after another; parallel = local processes (joblib); slurm = a cluster.
sweep: install
	$(PY) -m glassbox.train --multirun $(STAGE_ARGS) $(if $(LAUNCHER),hydra/launcher=$(LAUNCHER)) $(if $(SWEEP),$(SWEEP),model=tiny,seed,big)

test: install
	$(PY) -m pytest -q

benchmark: install
	$(PY) scripts/benchmark.py $(ARGS)

clean:
	rm -rf outputs/*/ data/processed
