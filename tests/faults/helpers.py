"""Helpers for the fault tests: a tiny config, CLI runners, and the one-line-error check.

The tiny config (digits, 200 training images, 1 epoch, MLPs) runs the whole pipeline in seconds.
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from edgekd.cli import main

REPO = Path(__file__).resolve().parents[2]

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {"source": "digits", "train_limit": 200, "test_limit": 100},
    "teachers": [{"arch": "mlp", "width": 16, "train": {"epochs": 1, "batch_size": 64, "amp": "off"}}],
    "student": {"arch": "mlp", "width": 8},
    "distill": {"train": {"epochs": 1, "batch_size": 64, "amp": "off"}},
    "quantize": {"calibration": "train-64"},
    "export": {"parity_samples": 16},
    "targets": ["x86-cpu"],
    "bench": {"eval_samples": 50, "runs": 5, "min_seconds": 0, "warmup_runs": 1, "warmup_seconds": 0, "rounds": 1},
    "gate": {"max_drop": 100},
}


def merged(base: dict, overrides: dict) -> dict:
    """Deep-merge `overrides` into a copy of `base`; a value of None deletes the key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def write_config(folder: Path, name: str = "pipeline.yaml", **overrides) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(merged(TINY, overrides), sort_keys=False), encoding="utf-8")
    return path


def invoke(*args: str) -> Result:
    """Run the CLI in-process; exceptions that are not EdgeKDError come back as result.exception."""
    return CliRunner().invoke(main, [str(a) for a in args])


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m edgekd ARGS` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "edgekd", *map(str, args)], capture_output=True, text=True,
                          env=env or subprocess_env(), timeout=timeout, cwd=REPO)


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit code 2, exactly one `edgekd: error:` line, no traceback, and every fragment in the message."""
    if isinstance(result, Result):
        code, stderr, everything = result.exit_code, result.stderr, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            f"unexpected {type(result.exception).__name__}: {result.exception}"
    else:
        code, stderr, everything = result.returncode, result.stderr, result.stdout + result.stderr
    assert "Traceback" not in everything, everything[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("edgekd: error:")]
    assert code == 2, f"exit code {code}; stderr:\n{stderr[-3000:]}"
    assert len(errors) == 1, stderr[-3000:]
    message = errors[0]
    print(message)  # shown with pytest -s: the messages users see
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message
