import numpy as np
import pytest

from edgekd.core.errors import StageError
from edgekd.quant.fallback import FallbackBudget, FallbackReport, logits_of, mean_kl, pick_calibration, quantize_auto, quantize_with_fallback
from edgekd.quant.host import recipe_for_host
from edgekd.runtimes import load_profile
from edgekd.runtimes.ptq import quantized_nodes

# As the pipeline quantizes on this CPU: without VNNI, 7-bit weights (quant/host.py), else saturation adds its own drop.
RECIPE = recipe_for_host(load_profile("x86-cpu").quantization).recipe


def test_fallback_keeps_planted_sensitive_layer_in_float(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    out = tmp_path / "int8.onnx"
    report = quantize_with_fallback(model, out, RECIPE, calib, val_x, val_y, FallbackBudget(max_drop=2.0))
    assert report.fp32_val_top1 == 1.0
    assert report.triggered and report.int8_val_drop > 30  # fully int8, the small features are lost
    assert report.sensitivity[0]["node"] == "fc0"  # the layer reading the huge-range input ranks first
    assert report.nodes_in_float == ["fc0"]
    assert report.val_drop <= 2.0
    assert "fc0" not in quantized_nodes(out) and "fc1" in quantized_nodes(out)  # the rest stays int8


def test_fallback_not_triggered_within_budget(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    sane = val_x.copy()
    sane[:, 15] = 0.0
    calib = calib.copy()
    calib[:, 15] = 0.0
    report = quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, calib, sane, val_y, FallbackBudget(max_drop=2.0))
    assert not report.triggered and report.nodes_in_float == [] and report.sensitivity == []
    assert set(quantized_nodes(tmp_path / "int8.onnx")) == {"fc0", "fc1"}


def test_fallback_gives_up_naming_what_it_tried(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    with pytest.raises(StageError, match=r"x86-vnni-u8s8.*max_drop 0\.001.*\(fc0\).*max_fallback_nodes") as gave_up:
        quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, calib, val_x, val_y,
                               FallbackBudget(max_drop=0.001, max_nodes=1))
    # what it tried travels with the error, for a caller comparing searches that both fail (benchmarks/fallback_search.py)
    tried = gave_up.value.fallback_report.tried
    assert tried[-1]["nodes_in_float"] == ["fc0"] and f"drops {tried[-1]['val_drop']:.2f}" in str(gave_up.value)


def _report(correct, kl=0.01, nodes=()):
    """A FallbackReport whose final model got `correct` (bools per validation sample) right."""
    correct = np.asarray(correct, dtype=bool)
    top1 = float(correct.mean())
    return FallbackReport(1.0, top1, 0.0, 1.0, triggered=bool(nodes), val_top1=top1, nodes_in_float=list(nodes),
                          val_kl=kl, val_correct=correct)


def _correct(n_right, n=9000, shift=0):
    return np.roll(np.arange(n) < n_right, shift)


def test_pick_calibration_prefers_fewer_float_nodes_then_closest_to_fp32_then_cheaper_method():
    same = _correct(8000)
    assert pick_calibration({"entropy": _report(same), "minmax": _report(same), "percentile": _report(same)}) == "minmax"
    assert pick_calibration({"entropy": _report(same, kl=0.005), "minmax": _report(same)}) == "entropy"
    assert pick_calibration({"minmax": _report(same, kl=0.001, nodes=["fc0"]), "percentile": _report(same)}) == "percentile"


def test_pick_calibration_ignores_a_top1_lead_within_noise():
    # 3 images of 9,000 more for percentile, while minmax stays closer to fp32: the earlier benchmark's case.
    minmax, percentile = _correct(7611, shift=50), _correct(7614)
    assert pick_calibration({"minmax": _report(minmax, kl=0.010), "percentile": _report(percentile, kl=0.012)}) == "minmax"


def test_pick_calibration_takes_a_significantly_more_accurate_method():
    minmax, entropy = _correct(7600), _correct(7700)  # 100 images more, none fewer: McNemar p ~ 1e-30
    assert pick_calibration({"minmax": _report(minmax, kl=0.010), "entropy": _report(entropy, kl=0.012)}) == "entropy"


def test_mean_kl_is_zero_for_equal_logits_and_positive_otherwise():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    assert mean_kl(logits, logits + 7.0) == pytest.approx(0.0, abs=1e-12)  # softmax ignores a shift
    assert mean_kl(logits, logits * 0.5) > 0


def test_auto_calibration_records_every_method(planted_sensitive_model, tmp_path):
    model, calib, val_x, val_y = planted_sensitive_model
    chosen, tried = quantize_auto(model, tmp_path / "int8.onnx", RECIPE, calib, val_x, val_y, FallbackBudget(max_drop=2.0))
    assert set(tried) == {"minmax", "moving-average", "percentile", "entropy"} and chosen in tried
    assert all(isinstance(r, FallbackReport) and r.val_drop <= 2.0 and r.val_kl >= 0 for r in tried.values())
    assert all(len(r.val_correct) == len(val_y) and "val_correct" not in r.to_json() for r in tried.values())
    assert quantized_nodes(tmp_path / "int8.onnx")


def test_a_drop_exactly_at_the_budget_does_not_trigger_the_fallback(planted_sensitive_model, tmp_path):
    """3 errors in 300 validation samples is a 1.0 point drop; as floats (1 - 0.99) * 100 is 1.0000000000000009,
    which once kept a node in float for nothing (issue 20, item 2)."""
    model, calib, val_x, val_y = planted_sensitive_model
    calib, val_x = calib.copy(), val_x.copy()
    calib[:, 15] /= 500  # a milder planted range (+-20): int8 gets a few percent of the samples wrong, not most
    val_x[:, 15] /= 500
    full = tmp_path / "full.onnx"
    quantize_with_fallback(model, full, RECIPE, calib, val_x, val_y, FallbackBudget(max_drop=100.0))
    predicted = logits_of(full, val_x).argmax(1)
    right, wrong = np.flatnonzero(predicted == val_y), np.flatnonzero(predicted != val_y)
    assert len(right) >= 297 and len(wrong) >= 4, (len(right), len(wrong))
    for errors, triggered in ((3, False), (4, True)):
        chosen = np.concatenate([right[:300 - errors], wrong[:errors]])
        report = quantize_with_fallback(model, tmp_path / f"int8-{errors}.onnx", RECIPE, calib, val_x[chosen], val_y[chosen],
                                        FallbackBudget(max_drop=1.0))
        assert report.fp32_val_top1 == 1.0 and report.int8_val_drop == pytest.approx(errors / 3)
        assert report.triggered is triggered
        assert (report.nodes_in_float == []) is not triggered


def test_a_misleading_one_pass_ranking_is_corrected_by_measuring_each_node_alone_in_float(planted_sensitive_model, tmp_path,
                                                                                          monkeypatch):
    """Trial defect (session 14): the one-pass score (own noise times reach) saturates once an upstream node has
    destroyed the signal and blames the last node: on an MLP with units scaled by 2000/1000/1500 it ranked /f3/Gemm
    first (score 1.0, the others 0.0) though only /f2/Gemm in float recovers int8, so max_fallback_nodes 1 kept the
    wrong node and gave up at an 88-point drop. The one-pass order is pinned here to that kind of answer (the last
    node first); measuring each node alone in float must put fc0, the one whose float version recovers, first."""
    import edgekd.quant.fallback as fallback

    def last_node_blamed(*args, **kwargs):
        return [{"node": "fc1", "score": 1.0, "noise_added": 0.9, "reach": 1.0},
                {"node": "fc0", "score": 0.0, "noise_added": 0.0, "reach": 0.0}]

    monkeypatch.setattr(fallback, "rank_for_fallback", last_node_blamed)
    model, calib, val_x, val_y = planted_sensitive_model
    report = quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, calib, val_x, val_y,
                                    FallbackBudget(max_drop=2.0, max_nodes=1))
    assert [row["node"] for row in report.sensitivity] == ["fc0", "fc1"]
    assert report.sensitivity[0]["ranked_by"] == "drop_alone_in_float"
    assert report.sensitivity[0]["drop_alone_in_float"] <= 2.0 < report.sensitivity[1]["drop_alone_in_float"]
    assert report.nodes_in_float == ["fc0"] and report.val_drop <= 2.0


@pytest.mark.slow  # trains the MLP for 60 epochs: about 17 s on 2 cores
def test_the_node_whose_int8_destroys_accuracy_is_kept_alone_on_an_outlier2_mlp(tmp_path):
    """Trial defect (session 14), on a model like the trial's outlier2: an MLP trained on digits, fc0 units 3 and 17
    scaled by 2000 and 1000 and fc1 unit 5 by 1500 (each compensated in the next layer), fed 0..16 pixels. Only fc1 in
    float recovers int8; the one-pass score ranked fc2 first (0.86 against fc1's 0.14), so max_fallback_nodes 1
    failed at a 90-point drop."""
    import torch
    from sklearn.datasets import load_digits

    from .conftest import gemm_mlp

    torch.manual_seed(0)
    digits = load_digits()
    x, y = (digits.images.astype(np.float32) / 16.0).reshape(-1, 64), digits.target.astype(np.int64)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 10))
    opt, inputs, labels = torch.optim.Adam(mlp.parameters(), 1e-2), torch.tensor(x), torch.tensor(y)
    for _ in range(60):
        order = torch.randperm(len(inputs))
        for i in range(0, len(inputs), 64):
            batch = order[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(mlp(inputs[batch]), labels[batch]).backward()
            opt.step()
    w = [mlp[i].weight.detach().numpy().astype(np.float64) for i in (0, 2, 4)]
    b = [mlp[i].bias.detach().numpy().astype(np.float64) for i in (0, 2, 4)]
    for unit, scale in [(3, 2000.0), (17, 1000.0)]:
        w[0][unit] *= scale
        b[0][unit] *= scale
        w[1][:, unit] /= scale
    w[1][5] *= 1500.0
    b[1][5] *= 1500.0
    w[2][:, 5] /= 1500.0
    model = gemm_mlp(tmp_path / "outlier2.onnx", w, b)
    pixels = x * 16
    truth = logits_of(model, pixels).argmax(1)
    report = quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, pixels[:256], pixels[1000:1300],
                                    truth[1000:1300], FallbackBudget(max_drop=1.0, max_nodes=1))
    assert report.int8_val_drop > 50 and report.sensitivity[0]["node"] == "fc1"
    assert report.nodes_in_float == ["fc1"] and report.val_drop <= 1.0


def test_a_node_alone_in_float_takes_the_weights_of_the_graph_int8_was_made_from(tmp_path):
    """Review (session 14): the 'node alone in float' model took its float weights from the raw file, while int8 is
    made from the prepared graph (BatchNorm folded into the Conv): a Conv followed by a BatchNorm got its unfolded
    weights with the BatchNorm gone (error 38.9 where plain int8 erred 0.86), so the node ranked last. The fallback
    now reads the prepared graph's weights; a weight whose shape differs from the quantized one is not swapped in."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekd.quant.fallback import _float_inputs, _one_node_in_float
    from edgekd.runtimes.profiles import QuantRecipe
    from edgekd.runtimes.ptq import prepare_for_quantization, quantize_qdq

    rng = np.random.default_rng(0)
    arrays = {"W": rng.normal(size=(4, 1, 3, 3)), "B": rng.normal(size=4), "s": rng.uniform(0.5, 2, 4),
              "bb": rng.normal(size=4), "m": rng.normal(size=4), "v": rng.uniform(0.5, 2, 4), "G": rng.normal(size=(3, 144))}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv1"),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], name="bn1"),
             helper.make_node("Relu", ["n"], ["r"], name="relu1"), helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "G"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                              [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    fp32, prepared, int8 = tmp_path / "fp32.onnx", tmp_path / "prepared.onnx", tmp_path / "int8.onnx"
    onnx.save(model, str(fp32))
    prepare_for_quantization(fp32, prepared)
    x = rng.normal(size=(16, 1, 8, 8)).astype(np.float32)
    quantize_qdq(fp32, int8, QuantRecipe(name="t"), x)
    reference, quantized = logits_of(fp32, x), onnx.load(str(int8))
    alone = _one_node_in_float(quantized, "conv1", _float_inputs(prepared))
    onnx.save(alone, str(tmp_path / "alone.onnx"))
    assert np.abs(logits_of(tmp_path / "alone.onnx", x) - reference).max() <= np.abs(logits_of(int8, x) - reference).max()
    floats = _float_inputs(prepared)
    floats["conv1"][1] = numpy_helper.from_array(np.zeros((4, 1, 1, 1), np.float32), "W")  # a weight of another shape
    assert _one_node_in_float(quantized, "conv1", floats) is None
