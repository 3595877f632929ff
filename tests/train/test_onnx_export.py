"""torch -> ONNX export: checked, shape-inferred, with metadata, dynamic batch, and a parity check
that fails with a clear message past its tolerance."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgekd.core.errors import ArtifactError, StageError  # noqa: E402
from edgekd.train.config import ExportConfig  # noqa: E402
from edgekd.train.models.zoo import ConvNet  # noqa: E402
from edgekd.train.onnx_export import check_onnx_file, export_onnx, parity, read_metadata  # noqa: E402

METADATA = {"preprocessing": {"layout": "NCHW", "mean": [0.5], "std": [0.25], "input_shape": [1, 8, 8]},
            "labels": [str(i) for i in range(10)], "edgekd_version": "test", "source_sha256": {"student.pt": "ab" * 32}}


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4).eval()
    x = np.random.default_rng(0).normal(size=(16, 1, 8, 8)).astype(np.float32)
    return model, x


@pytest.fixture(scope="module")
def exported(small, tmp_path_factory):
    model, x = small
    return export_onnx(model, x, tmp_path_factory.mktemp("export") / "m.onnx", ExportConfig(), METADATA)


def test_export_is_checked_with_opset_and_dynamic_batch(exported):
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # symbolic: any batch size
    assert [i.name for i in proto.graph.input] == ["input"] and proto.graph.output[0].name == "logits"
    assert proto.graph.value_info  # shape inference filled in the intermediate tensors


@pytest.mark.parametrize("opset", [17, 20])
def test_requested_opset_is_the_one_written(small, tmp_path, opset):
    model, x = small
    cfg = ExportConfig(opset=opset)
    path = export_onnx(model, x, tmp_path / f"op{opset}.onnx", cfg, {})
    proto = onnx.load(str(path))
    assert next(o.version for o in proto.opset_import if o.domain == "") == opset
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch on both exporters
    assert parity(model, path, x, cfg).max_abs_diff < 1e-4


def test_metadata_round_trips(exported):
    meta = read_metadata(exported)
    assert meta["preprocessing"]["mean"] == [0.5] and meta["preprocessing"]["layout"] == "NCHW"
    assert meta["labels"][3] == "3" and meta["edgekd_version"] == "test"
    assert meta["source_sha256"]["student.pt"] == "ab" * 32


def test_fixed_batch_export(small, tmp_path):
    model, x = small
    path = export_onnx(model, x, tmp_path / "fixed.onnx", ExportConfig(dynamic_batch=False), {})
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


def test_parity_reports_difference_and_agreement(small, exported):
    model, x = small
    result = parity(model, exported, x, ExportConfig())
    assert result.samples == 16 and result.max_abs_diff < 1e-4 and result.top1_agreement == 1.0


def test_parity_past_tolerance_fails_clearly(small, exported):
    import copy

    model, x = small
    drifted = copy.deepcopy(model)
    with torch.no_grad():
        drifted.head.bias.add_(0.5)  # the ONNX file no longer matches this model
    with pytest.raises(StageError, match=r"ONNX output differs from PyTorch \(max \|diff\| 5.00e-01 > export.parity_atol"):
        parity(drifted, exported, x, ExportConfig())


def test_truncated_onnx_is_refused(exported, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(exported.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="broken.onnx"):
        check_onnx_file(broken)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_torchvision_models_export_and_pass_parity(name, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = np.random.default_rng(0).normal(size=(4, 3, 224, 224)).astype(np.float32)
    path = export_onnx(model, x, tmp_path / f"{name}.onnx", ExportConfig(), METADATA)
    result = parity(model, path, x, ExportConfig())
    assert result.top1_agreement == 1.0 and result.max_abs_diff <= ExportConfig().parity_atol
