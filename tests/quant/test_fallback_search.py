"""The fallback search that scales (issue 34, part 3; issue 32, item 16): nodes ranked in one instrumented pass
(onnxruntime's qdq_loss_debug), then a bisection on how many of them stay float: O(log n) quantizations, not one
per node, for onnxruntime and NNCF (intel-cpu) recipes alike, and a time budget that stops the search."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import edgekd.runtimes.nncf_ptq as nncf_ptq
from edgekd.core.errors import StageError
from edgekd.quant.fallback import FallbackBudget, bisect_fewest, evaluations_needed, quantize_with_fallback
from edgekd.quant.host import recipe_for_host
from edgekd.runtimes import load_profile
from edgekd.runtimes.ptq import prepare_for_quantization, quantize_qdq, quantized_nodes
from edgekd.runtimes.sensitivity import rank_nodes

from .conftest import gemm_mlp

# Per-tensor weights: one outlier weight then sets the whole layer's scale, which is what makes a layer sensitive below.
RECIPE = recipe_for_host(load_profile("x86-cpu").quantization).recipe.model_copy(update={"per_channel": False})
LAYERS, WIDTH, SENSITIVE = 12, 32, "fc7"
# Points of top-1: with both planted layers in float the other ten int8 layers (per-tensor, 7-bit on AVX2) cost ~4.
MAX_DROP = 6.0


@pytest.fixture
def deep_two_sensitive(tmp_path):
    """A 12-layer MLP with two layers made sensitive on purpose, one early and one deep:
    - fc0 reads an input feature with a large range (up to 300) that it ignores (zero weights): the input's int8 scale
      rounds the features that matter to a few levels;
    - fc7 has one huge weight (1e3) on a unit that is always 0 (fc6's row for it has a large negative bias): that
      weight changes nothing in float, but with per-tensor int8 weights it sets the scale and rounds fc7's other
      weights to 0.
    Labels are the fp32 model's own predictions. Returns (path, calibration, validation x, validation y)."""
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 1 / math.sqrt(WIDTH), (WIDTH, WIDTH)) for _ in range(LAYERS - 1)] + [
        rng.normal(0, 1 / math.sqrt(WIDTH), (10, WIDTH))]
    weights[0] = rng.normal(0, 0.5, (WIDTH, 16))
    weights[0][:, 15] = 0.0
    biases = [np.zeros(len(w)) for w in weights]
    biases[6][3], weights[6][3] = -1e3, 0.0  # unit 3 of fc6 is always 0 after its Relu
    weights[7][:, 3] = 0.0
    weights[7][0, 3] = 1e3
    path = gemm_mlp(tmp_path / "deep.onnx", weights, biases)

    def forward(x):
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            x = x @ w.T + b
            x = np.maximum(x, 0) if i < LAYERS - 1 else x
        return x

    def sample(n, seed):
        x = np.random.default_rng(seed).normal(0, 1, (n, 16)).astype(np.float32)
        x[:, 15] = np.random.default_rng(seed + 1).uniform(-300, 300, n)
        return x

    calib, val = sample(256, 1), sample(600, 2)
    return path, calib, val, forward(val.astype(np.float64)).argmax(1)


def test_the_ranking_puts_the_layers_made_sensitive_first(deep_two_sensitive, tmp_path):
    model, calib, val_x, _ = deep_two_sensitive
    int8 = quantize_qdq(model, tmp_path / "int8.onnx", RECIPE, calib)
    rows = rank_nodes(prepare_for_quantization(model, tmp_path / "prepared.onnx"), int8, val_x[:64])
    assert {row["node"] for row in rows} == set(quantized_nodes(int8))
    assert {rows[0]["node"], rows[1]["node"]} == {"fc0", SENSITIVE}, rows[:4]
    assert rows[0]["noise_added"] > 10 * rows[2]["noise_added"]


def test_a_deep_sensitive_layer_outranks_a_first_layer_that_adds_little(deep_two_sensitive, tmp_path):
    """Without the huge input feature only fc7 is broken; a ranking by SQNR lost in dB would put fc0 (exact inputs,
    infinite SQNR) ahead of it."""
    model, calib, val_x, _ = deep_two_sensitive
    calib, val_x = calib.copy(), val_x.copy()
    calib[:, 15] = val_x[:, 15] = 0.0
    int8 = quantize_qdq(model, tmp_path / "int8.onnx", RECIPE, calib)
    rows = rank_nodes(prepare_for_quantization(model, tmp_path / "prepared.onnx"), int8, val_x[:64])
    assert rows[0]["node"] == SENSITIVE, rows[:3]


@pytest.mark.parametrize("upper", [1, 2, 3, 6, 7, 8, 17, 145])
def test_bisection_finds_the_fewest_passing_count_in_log_evaluations(upper):
    for needed in range(1, upper + 2):
        asked = []
        found = bisect_fewest(upper, lambda count, asked=asked, needed=needed: asked.append(count) or count >= needed)
        assert found == (needed if needed <= upper else None)
        assert len(asked) <= evaluations_needed(upper) and len(set(asked)) == len(asked)
    assert evaluations_needed(145) == 9 and evaluations_needed(6) == 4


def test_bisection_keeps_the_best_count_when_the_budget_runs_out():
    answers = iter([True, True, None])  # 4 passes, 2 passes, then the time is up
    assert bisect_fewest(8, lambda count: next(answers)) == 2
    assert bisect_fewest(8, lambda count: None) is None


def test_bisection_answers_only_a_count_it_tried_and_saw_pass():
    """Validation metrics are not monotone in the nodes kept float: 3 may pass where 6 fails (a smoke run of
    benchmarks/fallback_search.py had it). The answer is a count seen passing, never the untried upper bound."""
    asked = []
    assert bisect_fewest(6, lambda count: asked.append(count) or count == 3) == 3 and 6 not in asked
    assert bisect_fewest(6, lambda count: False) is None


def _count_calls(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(kwargs.get("nodes_to_exclude") or (args[4] if len(args) > 4 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_the_search_quantizes_log_n_times_and_keeps_both_layers_in_float(deep_two_sensitive, tmp_path, monkeypatch):
    """Before issue 34 the search quantized once per quantized node (12 here) before its first evaluation."""
    model, calib, val_x, val_y = deep_two_sensitive
    import onnxruntime.quantization

    calls = _count_calls(monkeypatch, onnxruntime.quantization, "quantize_static")  # quantize_qdq imports it per call
    budget = FallbackBudget(max_drop=MAX_DROP, max_nodes=8)
    report = quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, calib, val_x, val_y, budget)
    assert len(calls) <= 1 + evaluations_needed(8)  # 5, where one per node made 13 or more
    assert report.triggered and report.int8_val_drop > 20 and len(calls) == 1 + report.evaluations
    assert set(report.nodes_in_float) == {"fc0", SENSITIVE} and report.val_drop <= MAX_DROP
    assert report.strategy == "ranked" and not report.stopped and report.search_seconds > 0
    assert set(quantized_nodes(tmp_path / "int8.onnx")) == {f"fc{i}" for i in range(LAYERS)} - {"fc0", SENSITIVE}


@pytest.mark.slow  # NNCF quantizes a few times: about 20 s on 2 cores
def test_the_intel_cpu_search_runs_nncf_log_n_times_with_ignored_scope(deep_two_sensitive, tmp_path, monkeypatch):
    """For NNCF recipes the search used to re-run nncf.quantize once per node; now once per bisection step, the
    ranking coming from onnxruntime's quantization of the same graph."""
    model, calib, val_x, val_y = deep_two_sensitive
    recipe = recipe_for_host(load_profile("intel-cpu").quantization).recipe
    calls = _count_calls(monkeypatch, nncf_ptq, "quantize_nncf")
    # NNCF's per-channel weights leave fc7 intact, but its int8 of the other layers costs ~7 points here.
    budget = FallbackBudget(max_drop=10.0, max_nodes=8)
    report = quantize_with_fallback(model, tmp_path / "int8.onnx", recipe, calib, val_x, val_y, budget)
    assert len(calls) <= 1 + evaluations_needed(8)
    assert report.triggered and report.val_drop <= 10.0 and "fc0" in report.nodes_in_float
    assert len(calls) == 1 + report.evaluations
    assert [c for c in calls[1:]] == [t["nodes_in_float"] for t in report.tried]  # NNCF's ignored scope, by name


def test_max_seconds_stops_the_search_keeping_the_best_passing_candidate(deep_two_sensitive, tmp_path, monkeypatch):
    from edgekd.quant import fallback

    model, calib, val_x, val_y = deep_two_sensitive
    # The budget runs out right after the first evaluation (the top 4 ranked nodes in float, which passes).
    monkeypatch.setattr(fallback._Trials, "out_of_time", lambda self: self.report.evaluations >= 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, calib, val_x, val_y,
                                        FallbackBudget(max_drop=MAX_DROP, max_nodes=8, max_seconds=30))
    assert report.evaluations == 1 and len(report.nodes_in_float) == 4 and report.val_drop <= MAX_DROP
    assert report.stopped.startswith("quantize.fallback.max_seconds 30 reached after 1 evaluation")
    assert "kept the best passing candidate" in report.stopped and "stopped" in report.to_json()
    assert any("max_seconds" in str(w.message) for w in caught)
    assert len(quantized_nodes(tmp_path / "int8.onnx")) == LAYERS - 4  # the passing model


def test_max_seconds_with_no_passing_candidate_fails_naming_the_key(deep_two_sensitive, tmp_path):
    model, calib, val_x, val_y = deep_two_sensitive
    with pytest.warns(UserWarning, match="no passing candidate yet"), \
            pytest.raises(StageError, match=r"stopped at quantize\.fallback\.max_seconds 0\.001 after 0 evaluation"):
        quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, calib, val_x, val_y,
                               FallbackBudget(max_drop=MAX_DROP, max_nodes=8, max_seconds=0.001))


def test_progress_counts_evaluations_not_nodes(deep_two_sensitive, tmp_path, monkeypatch):
    from edgekd.quant import fallback

    seen = []
    real = fallback.progress
    monkeypatch.setattr(fallback, "progress", lambda *a, **k: seen.append(k) or real(*a, **k))
    model, calib, val_x, val_y = deep_two_sensitive
    quantize_with_fallback(model, tmp_path / "int8.onnx", RECIPE, calib, val_x, val_y, FallbackBudget(max_drop=MAX_DROP, max_nodes=8))
    assert [(k["unit"], k["total"]) for k in seen] == [("evaluation", evaluations_needed(8))]


def test_config_fallback_section_keeps_the_old_bool_and_documents_max_seconds(tiny_config):
    from edgekd.core.errors import ConfigError
    from edgekd.pipeline.config import validate_config
    from edgekd.pipeline.config_help import key_lines

    tiny_config["quantize"] = {"fallback": False}
    assert validate_config(tiny_config).quantize.fallback.enabled is False
    tiny_config["quantize"] = {"fallback": {"max_seconds": 90}}
    assert validate_config(tiny_config).quantize.fallback.max_seconds == 90
    tiny_config["quantize"] = {"fallback": {"max_seconds": 0}}
    with pytest.raises(ConfigError, match="quantize.fallback.max_seconds"):
        validate_config(tiny_config)
    line = next(line for line in key_lines("quantize") if line.startswith("quantize.fallback.max_seconds"))
    assert line.startswith("quantize.fallback.max_seconds = 600") and "best passing candidate" in line


def test_the_quantize_stage_gives_the_search_its_configured_time_budget(tiny_config, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from edgekd.pipeline.config import validate_config
    from edgekd.pipeline.stages import quantize as stage

    tiny_config["quantize"] = {"fallback": {"max_seconds": 42}, "max_fallback_nodes": 9, "max_drop": 0.3}
    cfg = validate_config(tiny_config)
    seen = {}

    def fake_search(fp32, out, recipe, calibration, x, y, budget, method):
        seen["budget"] = budget
        return stage.FallbackReport(1.0, 1.0, 0.0, budget.max_drop, triggered=False)

    monkeypatch.setattr(stage, "quantize_with_fallback", fake_search)
    from edgekd.core.metrics import topk

    ctx = SimpleNamespace(cfg=cfg, base_dir=tmp_path, layout=SimpleNamespace(fp32_onnx=tmp_path / "m.onnx", int8_onnx=lambda name: tmp_path / name),
                          dataset=SimpleNamespace(val=SimpleNamespace(x=np.zeros((2, 3)), y=np.zeros(2))),
                          task=SimpleNamespace(score=topk))
    stage._ptq(ctx, RECIPE, np.zeros((2, 3)))
    budget = seen["budget"]
    assert (budget.max_seconds, budget.max_nodes, budget.max_drop, budget.strategy) == (42, 9, 0.3, "ranked")


def _conv_model(path):
    """Conv -> Relu -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm on images of free height and width (an
    OCR model's input): onnxruntime drops each Relu after its quantized Conv, letting the Q/DQ clamp."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name) for name, shape in
             (("w0", (8, 3, 3, 3)), ("w1", (8, 8, 3, 3)), ("wf", (4, 8)))]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
             helper.make_node("Conv", ["r0", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="pool"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "wf"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "ocr-like", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_a_model_of_free_height_and_width_is_ranked_node_by_node(tmp_path):
    """Its tensors' shapes are unknown until the samples' size is given; and the quantized Convs' raw outputs are
    pre-Relu. Both once made the ranking fall back to cumulative errors (115 of PP-OCR cls's 145 nodes)."""
    model = _conv_model(tmp_path / "ocr.onnx")
    x = np.random.default_rng(1).normal(0, 1, (48, 3, 12, 40)).astype(np.float32)
    int8 = quantize_qdq(model, tmp_path / "int8.onnx", RECIPE, x[:32])
    rows = rank_nodes(prepare_for_quantization(model, tmp_path / "prepared.onnx"), int8, x[32:])
    assert {row["node"] for row in rows} == set(quantized_nodes(int8)) >= {"conv0", "conv1", "fc"}
    assert all(row["measured"] == "alone" for row in rows), rows
    # Each node's own int8 noise is small (int8 of a well-scaled layer), not the pre-Relu values' mismatch.
    assert all(0 <= row["noise_added"] < 0.05 for row in rows), rows
