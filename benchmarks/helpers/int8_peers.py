"""The peers edgekd's int8 is compared with in benchmarks/targets_architectures.py, at their defaults,
and per-op profiles of onnxruntime and OpenVINO that say where an int8 model spends its time.

- onnxruntime-default: `quantize_static(model, out, reader)`, every other argument at its default
  (QDQ, S8S8, per-tensor, MinMax in onnxruntime 1.2x-1.3x).
- nncf-default: `nncf.quantize(model, dataset)`, every other argument at its default, on the ONNX model
  for onnxruntime targets (a QDQ ONNX model) and on the OpenVINO model for OpenVINO targets (IR with
  FakeQuantize), as NNCF's guides do for each runtime.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from edgekd.core.batch_layout import to_model
from edgekd.core.metrics import sample_count, take_rows
from edgekd.runtimes.base import Artifact
from edgekd.runtimes.ptq import ArrayReader, model_axes


def ort_default(fp32_onnx: Path, out: Path, calibration: np.ndarray | dict[str, np.ndarray], input_name: str = "input") -> Path:
    """`calibration`: the one input's samples (named `input_name`), or {input name: samples} for several inputs."""
    from onnxruntime.quantization import quantize_static

    logging.getLogger("root").setLevel(logging.ERROR)
    # several inputs: each batch in the model's layout (a recurrent state's batch axis), as edgekd feeds it
    quantize_static(str(fp32_onnx), str(out), ArrayReader(input_name, calibration, axes=model_axes(fp32_onnx, calibration)))
    return out


def nncf_default_onnx(fp32_onnx: Path, out: Path, calibration: np.ndarray, input_name: str = "input") -> Path:
    import nncf
    import onnx

    quantized = nncf.quantize(onnx.load(str(fp32_onnx)), _dataset(calibration, input_name, model_axes(fp32_onnx, calibration)))
    onnx.save(quantized, str(out))
    return out


def nncf_default_openvino(fp32_onnx: Path, out_dir: Path, calibration: np.ndarray, runtime_options: dict) -> Artifact:
    """NNCF on the OpenVINO model, saved as IR and run with the same plugin settings as edgekd's int8 artifact."""
    import nncf
    import openvino as ov

    quantized = nncf.quantize(ov.convert_model(str(fp32_onnx)), _dataset(calibration, None, model_axes(fp32_onnx, calibration)))
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_dir / "model.xml"), compress_to_fp16=False)
    return Artifact("openvino", "int8", out_dir, "model.xml", ["model.xml", "model.bin"], runtime_options=dict(runtime_options))


def _dataset(calibration: np.ndarray, input_name: str | None, axes: dict | None = None):
    import nncf

    # One image per item, as NNCF's examples feed it; the default subset_size (300) takes them all. Several inputs:
    # one {name: sample} feed each, in the model's layout.
    if isinstance(calibration, dict):
        return nncf.Dataset([to_model(take_rows(calibration, slice(i, i + 1)), axes) for i in range(sample_count(calibration))])
    items = [calibration[i:i + 1] for i in range(len(calibration))]
    return nncf.Dataset(items, (lambda x: {input_name: x}) if input_name else None)


def ort_op_profile(model_path: Path, batch: np.ndarray, threads: int, runs: int = 20) -> dict:
    """ms per inference and node count by op type in onnxruntime's optimized graph (its own profiler)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgekd-ortprof-") as scratch:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.enable_profiling, options.profile_file_prefix = True, os.path.join(scratch, "p")
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(3):  # warm-up runs are profiled too; dropped below by counting only the last `runs`
            session.run(None, {name: batch})
        for _ in range(runs):
            session.run(None, {name: batch})
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(kernels) // (runs + 3)
    return _aggregate(((e["args"]["op_name"], e["dur"] / 1000.0) for e in kernels[-per_run * runs:]), runs)


def openvino_op_profile(xml_path: Path, config: dict, batch: np.ndarray, runs: int = 20) -> dict:
    """ms per inference and layer count by (layer type, kernel) in the CPU plugin's runtime graph (PERF_COUNT):
    the kernel name says whether a layer ran in int8 (`_I8`) or fell back to a float or reference kernel."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml_path), "CPU", {**config, "PERF_COUNT": True})
    request = compiled.create_infer_request()
    rows = []
    for _ in range(runs):
        request.infer({0: batch})
        rows += [(f"{p.node_type} [{p.exec_type}]", p.real_time.total_seconds() * 1000.0) for p in request.profiling_info
                 if p.status == p.Status.EXECUTED]
    return _aggregate(rows, runs)


def _aggregate(rows, runs: int) -> dict:
    ms, count = collections.Counter(), collections.Counter()
    for key, duration in rows:
        ms[key] += duration
        count[key] += 1
    ops = {key: {"ms": round(ms[key] / runs, 3), "count": count[key] // runs} for key, _ in ms.most_common()}
    return {"total_ms": round(sum(ms.values()) / runs, 3), "ops": ops}
