# Two commands on a fresh machine: `make demo`, `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.edgekd-installed
# torch 2.14.1 / torchvision 0.29.1 come from this machine's local wheel cache via pip.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test test-fast lint fashion-mnist chromium clean report-screenshot latency-fidelity gpu-check targets-architectures

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -e '.[train,torchvision,dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/edgekd run configs/quickstart.yaml --force

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check edgekd tests benchmarks

# The quickstart's report.html in headless Chromium -> docs/report-screenshot.png (the README's picture).
report-screenshot: setup chromium
	test -f runs/quickstart/report.html || $(VENV)/bin/edgekd run configs/quickstart.yaml
	$(PY) -m edgekd.bench.screenshot runs/quickstart/report.html docs/report-screenshot.png 1300 960

# edgekd bench against benchmark_app and a bare session.run loop (writes benchmarks/results/latency_fidelity.*).
latency-fidelity: setup
	flock /tmp/edgekd-heavy.lock $(PY) benchmarks/latency_fidelity.py

# Headless Chromium (Debian's package) renders report.html for the screenshot test.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package.
fashion-mnist:
	test -d /usr/share/datasets/fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)

clean:
	rm -rf runs .pytest_cache

# Training on a CUDA GPU, every distill mode (tests marked cuda); writes benchmarks/results/gpu_smoke.json.
gpu-check: setup
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA GPU visible to torch')"
	$(PY) -m pytest -q -p no:cacheprovider -m cuda tests/test_gpu_smoke.py

# int8 on the trained resnet18 / mobilenet_v3_small against onnxruntime and NNCF defaults (needs the bench extra: nncf).
targets-architectures: setup
	$(PIP) install --quiet -e '.[bench]'
	flock /tmp/edgekd-heavy.lock env PYTHONPATH=$(CURDIR) $(PY) benchmarks/targets_architectures.py
