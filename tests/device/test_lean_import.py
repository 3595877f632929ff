"""The device path must not import torch (nor matplotlib): checked in a fresh interpreter,
the way torchao's test_lean_import does, because this process may already have torch loaded."""
from __future__ import annotations

import subprocess
import sys

LEAN_MODULES = ["edgekd", "edgekd.cli", "edgekd.api", "edgekd.device.gate", "edgekd.device.ci_outputs", "edgekd.core.environment",
                "edgekd.device.bundle", "edgekd.device.bench", "edgekd.device.measure", "edgekd.device.latency",
                "edgekd.core.metrics", "edgekd.device.sizes", "edgekd.device.memory", "edgekd.device.report.build",
                "edgekd.device.report.html", "edgekd.device.report.compare", "edgekd.runtimes", "edgekd.runtimes.registry",
                "edgekd.runtimes.ort", "edgekd.runtimes.openvino", "edgekd.device.lm_bench", "edgekd.device.lm_legacy",
                "edgekd.lang.generate", "edgekd.lang.generation_bench", "edgekd.lang.perplexity", "edgekd.lang.lm_tokenizer"]


def test_bench_and_gate_modules_do_not_import_torch_or_matplotlib():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in LEAN_MODULES)
            + "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'matplotlib'))\n"
            + "assert not heavy, heavy\nprint('lean')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "lean"
