#!/usr/bin/env bash
# Issue 13, part 1, on a lent GPU machine (the device tool's nvidia-h200: torch, onnx, onnxruntime, rich, PyYAML
# are there; pydantic is not, and nothing can be downloaded there). One prepared run, because a session gets
# 15 minutes of device time in all:
#
#   bash scripts/gpu_session.sh prepare     # here, once: pydantic's wheels into .whl/, Fashion-MNIST into .fmnist/
#   device run: command "bash scripts/gpu_session.sh device", carry [".whl", ".fmnist"], timeout_s 540
#
# The device part runs the cuda tests (every distill mode, configs/fashion_mnist.yaml's teachers + KD against the
# 60 s target; writes benchmarks/results/gpu_smoke.json) and then benchmarks/gpu_step_profile.py (which switch
# shortens a teacher's epoch), each result copied to $OUT as soon as it exists, so a run cut by the time limit
# still brings back what finished. Both .whl/ and .fmnist/ are in .git/info/exclude (never committed).
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
    grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
    grep -qx '/.fmnist/' .git/info/exclude || echo /.fmnist/ >> .git/info/exclude
    # Python 3.12 wheels for the device, at the versions this venv resolved (pydantic and what it needs; the
    # device's own typing_extensions may be older than pydantic-core wants).
    local py=.venv/bin/python
    local pins
    pins=$($py -m pip list --format=freeze 2>/dev/null | grep -iE '^(pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection|typing[-_]extensions)==')
    rm -rf .whl && mkdir -p .whl
    # shellcheck disable=SC2086  # one argument per pin
    $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $pins
    mkdir -p .fmnist && cp /usr/share/datasets/fashion-mnist/*.gz .fmnist/
    du -sh .whl .fmnist
}

device() {
    local out=${OUT:-/tmp/gpu-out}
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    mkdir -p /usr/share/datasets/fashion-mnist && cp .fmnist/*.gz /usr/share/datasets/fashion-mnist/
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.txt" || true
    python3 -m pytest -q -p no:cacheprovider -m cuda tests/test_gpu_smoke.py 2>&1 | tee "$out/cuda-tests.log" || true
    cp benchmarks/results/gpu_smoke.json "$out/" 2>/dev/null || true
    python3 benchmarks/gpu_step_profile.py 2>&1 | tee "$out/gpu-step-profile.log" || true
    cp benchmarks/results/gpu_step_profile.json benchmarks/results/gpu_step_profile.md "$out/" 2>/dev/null || true
}

case "${1:-}" in
    prepare) prepare ;;
    device) device ;;
    *) echo "usage: bash scripts/gpu_session.sh prepare|device (see the comment at the top)" >&2; exit 2 ;;
esac
