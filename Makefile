# Two commands set everything up on a fresh machine:
#   make demo DATA_ROOT=./data   # venv + deps, then the NeuralFuse pipeline end to end on CIFAR-10
#   make test                    # venv + deps (+ requirements-optional.txt), then the pytest suite (CPU)
# Offline machines of this project: `make data DATA_ROOT=./data` lays out the shared data copy first
# (every dataset it has; `make data DATASET=cifar10` for one). Editing loop: `make test-fast` (no slow tests).
PYTHON ?= python3
VENV ?= .venv
DATA_ROOT ?= ./data
DEMO_ARGS ?=
BASELINES_ARGS ?=
SHARED_DATA ?= ../shared/data
DATASET ?= all
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OPT_STAMP := $(VENV)/.installed-optional

.PHONY: demo baselines data test test-fast bench gpu-check paper-row clean-venv

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

$(OPT_STAMP): $(STAMP) requirements-optional.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-optional.txt \
		|| echo "make: requirements-optional.txt not installed (offline?); tests that need them are skipped"
	touch $(OPT_STAMP)

demo: $(STAMP)
	$(PY) demo.py --data-root $(DATA_ROOT) $(DEMO_ARGS)

# NeuralFuse beside fault-aware training, UIP, SECDED and the iso-energy point (after `make demo`)
baselines: $(STAMP)
	$(PY) baselines.py --data-root $(DATA_ROOT) $(BASELINES_ARGS)

data: $(STAMP)
	$(PY) $(SHARED_DATA)/materialize.py $(DATASET) $(DATA_ROOT)

test: $(OPT_STAMP)
	$(PY) -m pytest -q

test-fast: $(OPT_STAMP)
	$(PY) -m pytest -q -m "not slow and not cuda"

bench: $(STAMP)
	$(PY) -m bench.bitflip
	$(PY) -m bench.eopm_step
	$(PY) -m bench.eval --data-root $(DATA_ROOT) --test-limit 1000

# On a GPU box, with its own Python (torch + CUDA already there; nothing is installed):
#   make gpu-check DATA_ROOT=/path/with/cifar-10-batches-py [GPU_PYTHON=python3]
GPU_PYTHON ?= python3
gpu-check:
	$(GPU_PYTHON) -m bench.gpu_check --data-root $(DATA_ROOT)

# Table 12's ResNet18 + ConvL row on one CUDA GPU within MINUTES; OUT is the folder to carry to the next box
OUT ?= paper_row
MINUTES ?= 9
paper-row:
	$(GPU_PYTHON) -m bench.paper_row --data-root $(DATA_ROOT) --out $(OUT) --minutes $(MINUTES)

clean-venv:
	rm -rf $(VENV)
