"""The logits every bundle gives on this machine, from its .onnx file and its .ort file: run on both sides.

benchmarks/arm64_emulated.py runs this once on the x86 build machine and once in the emulated arm64 root
(numpy, onnxruntime and edgekd only: no torch), then compares the two. For each bundle folder it

- verifies the bundle with edgekd (every file's sha256, before anything is loaded),
- runs eval.npz through the model edgekd loads (model.onnx, with the bundle's session settings),
- opens model.ort, if the bundle has one, the way an onnxruntime minimal build would (replaying the saved
  runtime optimisations), runs the same inputs through it and records which kernels each session ran
  (onnxruntime's profiler), so a QDQ model that runs its convolutions as float kernels shows,

and writes <out>/<bundle name>.npz (the logits) and <out>/device.json (machine, versions, kernels).

    python benchmarks/arm64_device_outputs.py OUT BUNDLE...
"""
from __future__ import annotations

import ctypes
import json
import os
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgekd.core.environment import cpu_info, library_versions
from edgekd.device.bundle import load_bundle
from edgekd.runtimes.ort import _ort_options

BATCH = 50
# Linux auxiliary-vector bits that decide which int8 kernels onnxruntime's MLAS picks on aarch64
# (arch/arm64/include/uapi/asm/hwcap.h): without dot product it multiplies int8 with plain NEON.
AT_HWCAP, AT_HWCAP2 = 16, 26
AARCH64_HWCAPS = {"asimddp (SDOT/UDOT)": (AT_HWCAP, 1 << 20), "sve": (AT_HWCAP, 1 << 22),
                  "i8mm (SMMLA)": (AT_HWCAP2, 1 << 13), "bf16": (AT_HWCAP2, 1 << 14)}


def hwcaps() -> list[str] | None:
    if platform.machine() != "aarch64":
        return None
    getauxval = ctypes.CDLL(None).getauxval
    getauxval.restype = ctypes.c_ulong
    return [name for name, (kind, bit) in AARCH64_HWCAPS.items() if getauxval(kind) & bit]


def run_batches(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + BATCH]})[0] for i in range(0, len(x), BATCH)])


def profiled_run(model: Path, options: ort.SessionOptions, x: np.ndarray, workdir: Path) -> tuple[np.ndarray, dict]:
    """Logits of `model` on x, and how many nodes of each operator type the session executed."""
    options.enable_profiling = True
    options.profile_file_prefix = str(workdir / model.stem)
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    logits = run_batches(session, x)
    trace = json.loads(Path(session.end_profiling()).read_text())
    kernels = Counter(event["args"]["op_name"] for event in trace
                      if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"))
    return logits, {op: count // ((len(x) + BATCH - 1) // BATCH) for op, count in sorted(kernels.items())}


# What a device sets to run an .ort file with its recorded fusions (bundles before edgekd recorded it).
ORT_FILE_CONFIG = {"session.load_model_format": "ORT", "session.enable_saved_runtime_optimizations": "1"}


def ort_file_options(settings: dict, notes: dict) -> ort.SessionOptions:
    """An .ort file as a minimal build runs it: the saved graph plus its recorded QDQ fusions, which
    onnxruntime only replays when told to (they are trusted: the bundle's sha256 was checked)."""
    options = _ort_options(settings)
    for key, value in notes.get("ort_format", {}).get("session_config", ORT_FILE_CONFIG).items():
        options.add_session_config_entry(key, value)
    return options


def check_bundle(bundle: Path, out: Path, workdir: Path) -> dict:
    manifest, artifact = load_bundle(bundle)  # raises on any sha256 mismatch, before a runtime opens a file
    with np.load(bundle / "eval.npz", allow_pickle=False) as data:
        x = data["x"]
    # One thread: emulated threads share this machine's two cores, and results do not depend on it.
    settings = {**artifact.runtime_options["session_options"], "intra_op_num_threads": 1, "inter_op_num_threads": 1}
    result = {"bundle": bundle.name, "target": manifest.get("target"), "precision": artifact.precision,
              "sha256_verified": True, "eval_samples": len(x)}
    onnx_logits, result["onnx_kernels"] = profiled_run(artifact.root / artifact.main, _ort_options(settings), x, workdir)
    arrays = {"onnx": onnx_logits}
    if "model.ort" in artifact.files:
        try:
            arrays["ort"], result["ort_kernels"] = profiled_run(bundle / "model.ort", ort_file_options(settings, artifact.notes), x, workdir)
            result["ort_format_loaded"] = True
        except Exception as exc:  # onnxruntime's own exception types; the failure is the result
            result.update(ort_format_loaded=False, ort_error=str(exc).splitlines()[0][:300])
    np.savez(out / f"{bundle.name}.npz", **arrays)
    return result


def main(out: Path, bundles: list[Path]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        results = [check_bundle(bundle, out, Path(workdir)) for bundle in bundles]
    environment = {"machine": platform.machine(), "python": platform.python_version(), "onnxruntime": ort.__version__,
                   "numpy": np.__version__, "libraries": library_versions(), "cpu": cpu_info(), "hwcaps": hwcaps(),
                   "qemu_cpu": os.environ.get("QEMU_CPU")}
    (out / "device.json").write_text(json.dumps({"environment": environment, "bundles": results}, indent=2) + "\n")
    print(f"{platform.machine()}: {len(results)} bundles checked, logits in {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
