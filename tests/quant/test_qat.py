"""QAT: batch-norm folding, fake-quantized training, and the exported QDQ model matching PyTorch."""
import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgekd.quant.host import recipe_for_host
from edgekd.quant.qat import QuantConv2d, fold_batch_norms, prepare_qat
from edgekd.quant.qat_export import export_qdq
from edgekd.quant.qat_train import finetune_qat
from edgekd.runtimes import load_profile
from edgekd.runtimes.openvino import OpenVinoSession
from edgekd.runtimes.ort import OrtSession
from edgekd.train.config import TrainConfig
from edgekd.train.trainer import predict_logits


def test_batch_norm_folding_keeps_outputs(trained_digits_cnn):
    import copy

    model, data = trained_digits_cnn
    folded = copy.deepcopy(model)
    assert fold_batch_norms(folded) == []
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    np.testing.assert_allclose(predict_logits(folded, data.test.x), predict_logits(model, data.test.x), atol=1e-4)


@pytest.mark.parametrize("target", ["x86-cpu", "nvidia-gpu"])
def test_qat_qdq_model_matches_fake_quantized_torch_in_ort_and_openvino(trained_digits_cnn, tmp_path, target):
    model, data = trained_digits_cnn
    recipe = recipe_for_host(load_profile(target).quantization).recipe  # what this CPU's int8 kernels compute exactly
    qat = prepare_qat(model, recipe, torch.from_numpy(data.train.x[:256]))
    assert any(isinstance(m, QuantConv2d) for m in qat.modules())
    soft = torch.softmax(torch.from_numpy(predict_logits(model, data.train.x)) / 4.0, dim=1)
    finetune_qat(qat, data.train.x, data.train.y, soft, TrainConfig(epochs=1, lr=0.002, amp="off"), 4.0, 0.9, seed=0)
    path = export_qdq(qat, data.val.x, tmp_path / "qat.onnx")
    reference = predict_logits(qat, data.test.x).argmax(1)
    ort_pred = OrtSession(path, threads=1).run(data.test.x).argmax(1)
    ov_pred = OpenVinoSession(path, {"INFERENCE_PRECISION_HINT": "f32"}).run(data.test.x).argmax(1)
    assert (ort_pred == reference).mean() >= 0.99
    assert (ov_pred == reference).mean() >= 0.99
    fp32_top1 = (predict_logits(model, data.test.x).argmax(1) == data.test.y).mean()
    assert (reference == data.test.y).mean() >= fp32_top1 - 0.03  # and fine-tuning in int8 kept the accuracy


def _initializers(path):
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def test_qat_export_stores_int8_weights_in_recipe_formats(trained_digits_cnn, tmp_path):
    model, data = trained_digits_cnn
    calib = torch.from_numpy(data.train.x[:128])
    for target, weight_bound, activation_dtype in [("x86-cpu", 127, np.uint8), ("x86-cpu-novnni", 63, np.uint8),
                                                   ("nvidia-gpu", 127, np.int8)]:
        path = export_qdq(prepare_qat(model, load_profile(target).quantization, calib), data.val.x, tmp_path / f"{target}.onnx")
        inits = _initializers(path)
        weights = [v for v in inits.values() if v.dtype == np.int8 and v.ndim >= 2]
        assert weights and max(int(np.abs(w).max()) for w in weights) <= weight_bound
        assert not [v for v in inits.values() if v.dtype == np.float32 and v.ndim >= 2]  # no float weights left
        graph = onnx.load(str(path)).graph
        act_zero_points = [numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                           if n.op_type == "Constant" and n.attribute[0].t.data_type in (2, 3) and not n.attribute[0].t.dims]
        assert act_zero_points and all(z.dtype == activation_dtype for z in act_zero_points)
        if target == "nvidia-gpu":  # TensorRT: symmetric activations
            assert all(int(z) == 0 for z in act_zero_points)
