"""A tiny real bundle (onnxruntime, fp32 linear classifier on 8x8 inputs), built without torch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekd.device.bundle import write_bundle  # noqa: E402
from edgekd.runtimes.base import Artifact  # noqa: E402

CLASSES = 10


def tiny_classifier(path: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x [N,1,8,8] -> Flatten -> Gemm -> logits [N,10]; returns the weights so tests can compute logits."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(64, CLASSES)).astype(np.float32)
    bias = rng.normal(size=CLASSES).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"], axis=1), helper.make_node("Gemm", ["flat", "W", "b"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return weight, bias


def make_bundle(root: Path, target: str = "x86-cpu", samples: int = 64, seed: int = 0, label_noise: float = 0.1,
                backend: str = "ort") -> Path:
    model_dir = root / f"model-{target}"
    model_dir.mkdir(parents=True)
    weight, bias = tiny_classifier(model_dir / "model.onnx", seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(samples, 1, 8, 8)).astype(np.float32)
    reference = x.reshape(samples, -1) @ weight + bias
    y = reference.argmax(1)
    flip = rng.random(samples) < label_noise  # a few wrong labels so top-1 is not trivially 100%
    y[flip] = (y[flip] + 1) % CLASSES
    artifact = Artifact("ort", "fp32", model_dir, "model.onnx", ["model.onnx"], runtime_options={"threads": 1})
    if backend == "openvino":
        ov = pytest.importorskip("openvino")
        ov.save_model(ov.convert_model(str(model_dir / "model.onnx")), str(model_dir / "model.xml"), compress_to_fp16=False)
        artifact = Artifact("openvino", "fp32", model_dir, "model.xml", ["model.xml", "model.bin"],
                            runtime_options={"device": "CPU", "config": {"INFERENCE_PRECISION_HINT": "f32",
                                                                         "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}})
    info = {"target": target, "run": "tiny", "profile": {"gate": {"max_drop": 1.0}}}
    return write_bundle(root / "bundle" / target, artifact, x, y, reference, info)


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path)


@pytest.fixture
def bundle_factory():
    """make_bundle for tests that need several bundles in one run folder."""
    return make_bundle
