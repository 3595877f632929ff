"""Accuracy-aware fallback: keep the most quantization-sensitive nodes in float until int8 meets its budget.

The search costs O(log n) quantizations, not O(n):
1. Rank. One instrumented pass of the int8 and float models over validation samples (onnxruntime's
   qdq_loss_debug; runtimes/sensitivity.py) ranks the quantized nodes by the int8 noise each adds.
   Then the top of that ranking (all nodes of a small model, MEASURED_NODES of a big one) is re-ordered by the
   validation metric with each node alone in float, one evaluation each, no quantization (measure_alone_in_float):
   the one-pass score can blame the last node for noise an earlier one made.
2. Bisect. Quantize with the top k of that ranking kept in float (onnxruntime's nodes_to_exclude, or NNCF's
   ignored scope for OpenVINO recipes) and judge the validation metric, halving on k between 1 and max_nodes
   (bisect_fewest): 1 + log2(max_nodes) quantize-and-evaluate rounds at most.
The search stops at `max_seconds` and keeps the best passing candidate found by then, saying so.

Before issue 34 each quantized node was measured alone in float, one quantization each (rank_sensitivity below,
then one evaluation per count): 20 minutes for a 145-node model. That search stays callable
(FallbackBudget.strategy "per-node") so that benchmarks/fallback_search.py can time the two on the same data.
"""
from __future__ import annotations

import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from edgekd.core.errors import StageError
from edgekd.core.metrics import accuracy_drop, mcnemar_exact, predict, take_rows, topk, within_limit
from edgekd.core.progress import progress
from edgekd.quant.config import FALLBACK_MAX_SECONDS
from edgekd.runtimes.ort import OrtSession
from edgekd.runtimes.profiles import QuantRecipe
from edgekd.runtimes.ptq import prepare_for_quantization, quantize_qdq, quantized_nodes


@dataclass
class FallbackBudget:
    max_drop: float
    drop_type: str = "absolute"
    max_nodes: int = 6
    sensitivity_samples: int = 64  # of the ranking pass (512 were the per-node search's)
    max_seconds: float = FALLBACK_MAX_SECONDS  # quantize.fallback.max_seconds
    # "ranked": one instrumented pass, then bisection. "per-node": the search before issue 34 (one quantization
    # per node, then one evaluation per count), kept for benchmarks/fallback_search.py's comparison only.
    strategy: Literal["ranked", "per-node"] = "ranked"
    # The task's score of outputs against labels (higher is better): top-1 for classifiers, a task metric otherwise.
    score: Callable[[np.ndarray, np.ndarray], float] = topk
    # Calibration methods tried, in order, when the first int8 model breaks the budget, before any node is kept in
    # float: the one that drops least is searched from. A calibration that ignores an outlier batch can fix a
    # whole model at one quantization's cost, where the node search costs a ranking pass and several.
    retry_calibrations: tuple[str, ...] = ()
    # Then, when the model still breaks the budget, the same calibration with only these op types quantized
    # (WEIGHTED_OP_TYPES for onnxruntime recipes that quantize onnxruntime's whole default set): one quantization,
    # kept when it drops less, and the node search starts from it.
    retry_op_types: tuple[str, ...] = ()
    # NNCF recipes: its presets tried, in order, when the first int8 model breaks the budget (before the op types and
    # the node search): "mixed" (asymmetric activations) is NNCF's own advice for activations that are not centred
    # on zero, after hard-swish, GELU or a LayerNorm's shift. PP-OCRv4 rec on OpenVINO (160 lines, 100 calibrating):
    # performance 88.1% CTC accuracy, mixed 95.0%, fp32 94.4% (benchmarks/results/nncf_preset.md).
    retry_presets: tuple[str, ...] = ()
    # Whose names the advice of a failure uses: the pipeline's config keys, or the Python API's (quant/api.py), which
    # has no quantize.fallback or quantize.method keys.
    advice: Literal["pipeline", "api"] = "pipeline"


# What a failure advises, in the names of the caller's settings (FallbackBudget.advice).
ADVICE = {
    "pipeline": {"max_seconds": "quantize.fallback.max_seconds", "max_nodes": "quantize.max_fallback_nodes",
                 "none_in_float": "quantize.fallback false or max_fallback_nodes 0",
                 "enable": "set quantize.fallback: true (and max_fallback_nodes above 0)",
                 "calibration": "quantize.calibrate_method entropy or percentile", "qat": "quantize.method: qat"},
    "api": {"max_seconds": "FallbackBudget.max_seconds", "max_nodes": "FallbackBudget.max_nodes",
            "none_in_float": "FallbackBudget.max_nodes 0",
            "enable": "give Int8Config.fallback a FallbackBudget with max_nodes above 0",
            "calibration": "Int8Config(calibrate_method='entropy', 'percentile' or 'auto')",
            "qat": "quantization-aware training (Int8Config(step='prepare'), fine-tune, then step='convert')"},
}


# The op types with weights, where int8 saves the most time (QLinearConv, MatMulInteger). onnxruntime's default set
# also quantizes every Add, Mul, Div, Clip and Sigmoid between them, which puts each elementwise step of a LayerNorm
# or a hard-swish on an 8-bit grid: PP-OCRv4 rec lost 14 points of CTC accuracy that way (160 lines, minmax) and none
# with its Conv and MatMul layers alone, on the same calibration (benchmarks/results/op_type_retry.md). Keeping up to max_nodes nodes in float cannot undo
# a loss spread over a hundred elementwise nodes; one quantization with this set can.
WEIGHTED_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def with_op_types(recipe: QuantRecipe, op_types) -> QuantRecipe:
    """`recipe` quantizing only `op_types` (None: the recipe as it is)."""
    return recipe if op_types is None else recipe.model_copy(update={"op_types": list(op_types), "extra_op_types": []})


def with_preset(recipe: QuantRecipe, preset: str | None) -> QuantRecipe:
    """NNCF `recipe` with `preset` (None or "": the recipe as it is)."""
    return recipe.model_copy(update={"preset": preset}) if preset else recipe


@dataclass
class FallbackReport:
    """What the search did; goes to the manifest as is."""

    fp32_val_top1: float
    int8_val_top1: float
    int8_val_drop: float
    max_drop: float
    triggered: bool
    val_top1: float = 0.0
    val_drop: float = 0.0
    nodes_in_float: list[str] = field(default_factory=list)
    sensitivity: list[dict] = field(default_factory=list)
    tried: list[dict] = field(default_factory=list)
    # Mean KL divergence (nats) of the final int8 model's softmax from the fp32 model's, on the validation split.
    val_kl: float = 0.0
    # How the search went: its strategy, quantize-and-evaluate rounds, seconds (ranking included), and why it
    # stopped early ("" when it ran to its end).
    strategy: str = "ranked"
    evaluations: int = 0
    search_seconds: float = 0.0
    stopped: str = ""
    # The calibration method the model was made with ("" when the recipe's), and what each retried one dropped.
    calibrate_method: str = ""
    calibrations_tried: dict[str, dict] = field(default_factory=dict)
    # The op types the model quantizes when the op-type retry replaced the recipe's (None: the recipe's), and what
    # that retry dropped.
    op_types: list[str] | None = None
    op_types_tried: dict[str, dict] = field(default_factory=dict)
    # The NNCF preset the model was made with when the preset retry replaced the recipe's ("": the recipe's), and
    # what each preset tried dropped.
    preset: str = ""
    presets_tried: dict[str, dict] = field(default_factory=dict)
    # The first model's drop (the recipe's calibration, op set and preset), before any retry replaced it.
    first_val_drop: float | None = None
    # Per validation sample: did the final int8 model predict the label? Kept for paired tests, not for the manifest.
    val_correct: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "val_correct"}


def logits_of(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    return predict(OrtSession(onnx_path, threads=None).run, x)


def evaluations_needed(max_nodes: int) -> int:
    """Quantize-and-evaluate rounds of a bisection over 1..max_nodes nodes in float: max_nodes, then halving."""
    return 0 if max_nodes < 1 else 1 + math.ceil(math.log2(max_nodes))


def bisect_fewest(upper: int, passes: Callable[[int], bool | None]) -> int | None:
    """The fewest nodes in float (1..upper) for which `passes`, by halving: a count that passes ends the search above
    it, one that fails below it. `upper` itself is tried only when no smaller count passed. Assumes that more nodes
    in float do not make int8 worse; validation metrics are not quite monotone, so no count is taken on faith: the
    answer is always one that was tried and passed. `passes` answers None when the time budget is spent: the fewest
    passing count found so far is kept. None: no count passed (or none was tried)."""
    failing, untried_top, passing = 0, upper, None
    while untried_top - failing > 1:
        middle = (failing + untried_top) // 2
        verdict = passes(middle)
        if verdict is None:
            return passing
        if verdict:
            passing = untried_top = middle
        else:
            failing = middle
    if passing is None and upper >= 1 and failing < upper:
        return upper if passes(upper) else None
    return passing


class _Trials:
    """Quantize with some nodes in float, judge on the validation split, keep the best passing model; refuses a
    trial that would end after the deadline, judged by the longest trial so far."""

    def __init__(self, quantize, val_x, val_y, fp32_top1: float, budget: FallbackBudget, report: FallbackReport,
                 scratch: Path, first_seconds: float):
        self.quantize, self.val_x, self.val_y, self.fp32_top1 = quantize, val_x, val_y, fp32_top1
        self.budget, self.report, self.scratch = budget, report, scratch
        self.started, self.longest = time.monotonic(), first_seconds
        self.best: tuple[int, Path, np.ndarray] | None = None
        self.bar = None

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started + self.longest > self.budget.max_seconds

    def passes(self, ranked: list[str], count: int) -> bool | None:
        if self.out_of_time():
            self._stop()
            return None
        began, kept = time.monotonic(), ranked[:count]
        path = self.quantize(self.scratch / f"trial-{count}.onnx", kept)
        logits = logits_of(path, self.val_x)
        top1 = self.budget.score(logits, self.val_y)
        drop = accuracy_drop(self.fp32_top1, top1, self.budget.drop_type, len(self.val_y))
        self.report.tried.append({"nodes_in_float": kept, "val_top1": top1, "val_drop": drop})
        self.report.evaluations += 1
        self.longest = max(self.longest, time.monotonic() - began)
        if self.bar is not None:
            self.bar.update(1)
        passed = within_limit(drop, self.budget.max_drop)
        if passed and (self.best is None or count < self.best[0]):
            self.best = (count, path, logits)
            self.report.nodes_in_float, self.report.val_top1, self.report.val_drop = kept, top1, drop
        return passed

    def _stop(self) -> None:
        elapsed = time.monotonic() - self.started
        self.report.stopped = (f"{ADVICE[self.budget.advice]['max_seconds']} {self.budget.max_seconds:g} reached after "
                               f"{self.report.evaluations} evaluation(s) in {elapsed:.0f} s (the next would take about "
                               f"{self.longest:.0f} s); " + ("kept the best passing candidate so far"
                                                            if self.best else "no passing candidate yet"))
        warnings.warn(f"int8 fallback search: {self.report.stopped}", stacklevel=2)


def quantize_with_fallback(fp32_onnx: Path, out_path: Path, recipe: QuantRecipe, calibration: np.ndarray,
                           val_x: np.ndarray, val_y: np.ndarray, budget: FallbackBudget,
                           calibrate_method: str | None = None) -> FallbackReport:
    """Quantize; if the validation drop exceeds the budget, keep sensitive nodes in float (the module's search).

    Raises StageError naming what was tried when `budget.max_nodes` nodes in float are not enough, or when
    `budget.max_seconds` ran out before any candidate passed.
    """
    fp32_logits = logits_of(fp32_onnx, val_x)
    fp32_top1 = budget.score(fp32_logits, val_y)
    with tempfile.TemporaryDirectory(prefix="edgekd-fallback-") as scratch:
        def quantizer(method: str | None, made_with: QuantRecipe = recipe):
            # One range cache per calibration method: a narrower op set reads the ranges of a subset of its tensors.
            cache = Path(scratch) / f"calibration-{method or 'recipe'}.json"
            return lambda path, exclude: quantize_qdq(fp32_onnx, path, made_with, calibration, nodes_to_exclude=exclude,
                                                      calibrate_method=method, calibration_cache=cache)
        began = time.monotonic()
        plain = _PlainInt8(val_x, val_y, fp32_top1, budget)
        method, quantize = calibrate_method, quantizer(calibrate_method)
        int8_logits, top1, drop = plain.make(quantize, out_path)
        first_drop = drop
        tried, op_types_tried, op_types, presets_tried, first_preset = {}, {}, None, {}, recipe.preset
        for other in budget.retry_calibrations:
            if within_limit(drop, budget.max_drop):
                break
            retry, path = quantizer(other), Path(scratch) / f"plain-{other}.onnx"
            logits, other_top1, other_drop = plain.make(retry, path)
            tried[other] = {"val_top1": other_top1, "val_drop": other_drop}
            if other_drop < drop:
                method, quantize, int8_logits, top1, drop = other, retry, logits, other_top1, other_drop
                shutil.copyfile(path, out_path)
        for preset in budget.retry_presets:
            if within_limit(drop, budget.max_drop):
                break
            variant, path = with_preset(recipe, preset), Path(scratch) / f"plain-{preset}.onnx"
            retry = quantizer(method, variant)
            logits, other_top1, other_drop = plain.make(retry, path)
            presets_tried[preset] = {"val_top1": other_top1, "val_drop": other_drop}
            if other_drop < drop:
                recipe, quantize, int8_logits, top1, drop = variant, retry, logits, other_top1, other_drop
                shutil.copyfile(path, out_path)
        narrowed = with_op_types(recipe, budget.retry_op_types or None)
        # With every calibration tried, the winner over the whole op set first: it need not win over the narrower set
        # (PP-OCRv4 rec: moving-average beat minmax over the whole set, minmax beat it over the weighted layers).
        for other in dict.fromkeys([method, calibrate_method, *tried]) if budget.retry_op_types else ():
            if within_limit(drop, budget.max_drop):
                break
            retry, path = quantizer(other, narrowed), Path(scratch) / f"plain-op-types-{other or 'recipe'}.onnx"
            logits, other_top1, other_drop = plain.make(retry, path)
            label = f"only {'+'.join(budget.retry_op_types)} quantized, {other or recipe.calibrate_method} calibration"
            op_types_tried[label] = {"val_top1": other_top1, "val_drop": other_drop}
            if other_drop < drop:
                method, op_types, quantize = other, list(budget.retry_op_types), retry
                int8_logits, top1, drop = logits, other_top1, other_drop
                shutil.copyfile(path, out_path)
        recipe = narrowed if op_types else recipe
        report = FallbackReport(fp32_top1, top1, drop, budget.max_drop, triggered=not within_limit(drop, budget.max_drop),
                                val_top1=top1, val_drop=drop, strategy=budget.strategy, calibrate_method=method or "",
                                calibrations_tried=tried, op_types=op_types, op_types_tried=op_types_tried,
                                preset=recipe.preset if recipe.preset != first_preset else "", presets_tried=presets_tried,
                                first_val_drop=first_drop)
        if not report.triggered:
            return _with_fidelity(report, fp32_logits, int8_logits, val_y)
        trials = _Trials(quantize, val_x, val_y, fp32_top1, budget, report, Path(scratch), time.monotonic() - began)
        subset = slice(0, budget.sensitivity_samples)
        if budget.max_nodes == 0:  # no node may stay in float (fallback off): nothing to rank or search
            pass
        elif budget.strategy == "per-node":
            report.sensitivity = rank_sensitivity(out_path, fp32_logits[subset], take_rows(val_x, subset), quantize, Path(scratch))
            _linear_search([row["node"] for row in report.sensitivity], budget, trials)
        else:
            report.sensitivity = rank_for_fallback(fp32_onnx, out_path, recipe, calibration, take_rows(val_x, subset), Path(scratch),
                                                   method)
            # the float weights of the graph the int8 model was made from (BatchNorm folded into Conv), not the raw file's
            prepared = Path(scratch) / "prepared.onnx"
            report.sensitivity = measure_alone_in_float(report.sensitivity, trials, subset, fp32_logits[subset], out_path,
                                                        prepared if prepared.is_file() else fp32_onnx)
            _bisection([row["node"] for row in report.sensitivity], budget, trials)
        report.search_seconds = round(time.monotonic() - trials.started, 2)
        if trials.best is not None:
            shutil.copyfile(trials.best[1], out_path)
            return _with_fidelity(report, fp32_logits, trials.best[2], val_y)
    failed = StageError(_give_up_message(recipe, report, budget))
    failed.fallback_report = report  # what the search tried, for callers that compare searches (benchmarks/fallback_search.py)
    raise failed


@dataclass
class _PlainInt8:
    """An int8 model with no node in float, made and scored on the validation split."""

    val_x: np.ndarray
    val_y: np.ndarray
    fp32_top1: float
    budget: FallbackBudget

    def make(self, quantize, path: Path) -> tuple[np.ndarray, float, float]:
        quantize(path, [])
        logits = logits_of(path, self.val_x)
        top1 = self.budget.score(logits, self.val_y)
        return logits, top1, accuracy_drop(self.fp32_top1, top1, self.budget.drop_type, len(self.val_y))


# Nodes of the ranking measured one at a time (one evaluation on the sensitivity samples each, no quantization): all
# of a small model's, the top of a big model's one-pass ranking.
MEASURED_NODES = 32


def measure_alone_in_float(ranked: list[dict], trials: _Trials, subset: slice, fp32_logits: np.ndarray,
                           int8_onnx: Path, fp32_onnx: Path) -> list[dict]:
    """The top MEASURED_NODES of the one-pass ranking re-ordered by the validation metric on the sensitivity samples
    with each node alone in float (ties: the logits' error against fp32), as onnxruntime's qdq_loss_debug advice of
    trying one node at a time does. Why: the one-pass score (own noise times reach) saturates once an upstream node
    has destroyed the signal, and its blame moves to the last node; on an MLP whose middle layer has a unit 1500x the
    others it ranked the last Gemm first, though only the middle one in float recovers int8 (90 points).
    Each node in float is the int8 model with that node's Q/DQ inputs bypassed (_one_node_in_float): an evaluation,
    not a quantization, so the search stays at O(log n) quantizations. Nodes past the cap, ones that cannot be
    bypassed, and any left when quantize.fallback.max_seconds runs out keep the one-pass order after the measured
    ones; each row says how it was ranked ("ranked_by")."""
    import onnx

    x, y = take_rows(trials.val_x, subset), trials.val_y[subset]
    fp32_score = trials.budget.score(fp32_logits, y)
    int8_model, floats = onnx.load(str(int8_onnx)), _float_inputs(fp32_onnx)
    int8_drop = accuracy_drop(fp32_score, trials.budget.score(logits_of(int8_onnx, x), y), trials.budget.drop_type, len(y))
    head, tail = [], []
    for row in ranked:
        model = None if len(head) >= MEASURED_NODES or trials.out_of_time() else \
            _one_node_in_float(int8_model, row["node"], floats)
        if model is None:
            tail.append({**row, "ranked_by": "score"})
            continue
        path = trials.scratch / "alone.onnx"
        onnx.save(model, str(path))
        logits = logits_of(path, x)
        drop = accuracy_drop(fp32_score, trials.budget.score(logits, y), trials.budget.drop_type, len(y))
        head.append({**row, "drop_alone_in_float": drop, "recovered_alone_in_float": int8_drop - drop,
                     "mse_alone_in_float": _mse(logits, fp32_logits),
                     "ranked_by": "drop_alone_in_float"})
    return sorted(head, key=lambda row: (row["drop_alone_in_float"], row["mse_alone_in_float"])) + tail


def _float_inputs(fp32_onnx: Path) -> dict[str, list]:
    """Per node name of the float model: its inputs, each as its float initializer (a TensorProto) or None."""
    import onnx

    graph = onnx.load(str(fp32_onnx)).graph
    constants = {t.name: t for t in graph.initializer}
    return {n.name: [constants.get(i) for i in n.input] for n in graph.node if n.name}


def _one_node_in_float(int8_model, node_name: str, floats: dict[str, list]):
    """A copy of the int8 QDQ model where `node_name` reads float inputs: an activation's Q/DQ pair is bypassed, an
    int8 weight (or bias) is replaced by the float model's. None when that cannot be done (no such node in either
    model, a weight the float model computes or holds in another shape): judged on the model itself, so a node that
    cannot be bypassed costs no copy of the model."""
    import copy

    graph = int8_model.graph
    producer = {out: n for n in graph.node for out in n.output}
    node = next((n for n in graph.node if n.name == node_name), None)
    float_inputs = floats.get(node_name)
    if node is None or float_inputs is None or len(float_inputs) != len(node.input):
        return None
    changes = _float_input_changes(node, producer, float_inputs, {t.name: t for t in graph.initializer})
    if changes is None:
        return None
    model = copy.deepcopy(int8_model)
    node = next(n for n in model.graph.node if n.name == node_name)
    for index, source in changes.items():
        if isinstance(source, str):  # the activation before its QuantizeLinear
            node.input[index] = source
            continue
        weight = copy.deepcopy(source)
        weight.name = f"edgekd_float_{node_name}_{index}"
        model.graph.initializer.append(weight)
        node.input[index] = weight.name
    return model


def _float_input_changes(node, producer: dict, float_inputs: list, initializers: dict) -> dict | None:
    """Per input of `node` read through a DequantizeLinear: the float tensor's name (an activation's Q/DQ pair
    bypassed) or the float initializer that replaces an int8 weight; None when an input cannot be read in float (no
    float weight, or one whose shape differs from the quantized one: a graph prepared otherwise)."""
    changes: dict[int, object] = {}
    for index, tensor in enumerate(node.input):
        dequantize = producer.get(tensor)
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue
        quantize = producer.get(dequantize.input[0])
        if quantize is not None and quantize.op_type == "QuantizeLinear":
            changes[index] = quantize.input[0]
            continue
        weight, quantized = float_inputs[index], initializers.get(dequantize.input[0])
        if weight is None or (quantized is not None and list(weight.dims) != list(quantized.dims)):
            return None
        changes[index] = weight
    return changes


def _bisection(ranked: list[str], budget: FallbackBudget, trials: _Trials) -> None:
    upper = min(budget.max_nodes, len(ranked))
    with progress(total=evaluations_needed(upper), desc=f"fallback search over {upper} of {len(ranked)} ranked nodes",
                  unit="evaluation") as bar:
        trials.bar = bar
        bisect_fewest(upper, lambda count: trials.passes(ranked, count))


def _linear_search(ranked: list[str], budget: FallbackBudget, trials: _Trials) -> None:
    """The search before issue 34: 1, 2, ... nodes in float until one passes (for benchmarks/fallback_search.py)."""
    for count in progress(range(1, min(budget.max_nodes, len(ranked)) + 1), desc="fallback search", unit="node"):
        if trials.passes(ranked, count):
            return


def rank_for_fallback(fp32_onnx: Path, int8_onnx: Path, recipe: QuantRecipe, calibration: np.ndarray, x: np.ndarray,
                      scratch: Path, calibrate_method: str | None = None) -> list[dict]:
    """The quantized nodes of `int8_onnx`, ranked by runtimes/sensitivity.py on samples `x`. An NNCF model is ranked
    through onnxruntime's quantization of the same graph (qdq_loss_debug reads onnxruntime's Q/DQ naming): the same
    nodes, quantized by comparable rules; NNCF's nodes that this ranking does not know come last."""
    from edgekd.runtimes.sensitivity import rank_nodes

    prepared = prepare_for_quantization(fp32_onnx, scratch / "prepared.onnx")
    ranked_model = int8_onnx
    if recipe.tool == "nncf":
        ranked_model = quantize_qdq(fp32_onnx, scratch / "ranking.onnx", ort_stand_in(recipe), calibration,
                                    calibrate_method="minmax")
    rows = rank_nodes(prepared, ranked_model, x)
    wanted = quantized_nodes(int8_onnx)
    known = [row for row in rows if row["node"] in set(wanted)]
    seen = {row["node"] for row in known}
    return known + [{"node": n, "noise_added": None, "output_noise": None, "input_noise": None} for n in wanted
                    if n not in seen]


def ort_stand_in(recipe: QuantRecipe) -> QuantRecipe:
    """onnxruntime settings close to an NNCF recipe's: per-channel symmetric int8 weights (7-bit with reduce_range),
    activations symmetric under NNCF's performance preset, asymmetric under mixed."""
    return QuantRecipe(name=f"{recipe.name} (onnxruntime stand-in for ranking)", reduce_range=recipe.reduce_range,
                       symmetric_activations=recipe.preset == "performance")


# Cheapest first: on equal standing the earlier one is kept.
CALIBRATION_ORDER = ("minmax", "moving-average", "percentile", "entropy")
# A calibration method beats the one closest to fp32 on labels only when its gain in validation top-1 is
# unlikely to be chance: exact McNemar test on the paired predictions, two-sided.
SIGNIFICANCE = 0.05


def pick_calibration(reports: dict[str, FallbackReport]) -> str:
    """Fewest nodes in float (faster, smaller), then the int8 model closest to the fp32 model (lowest mean KL divergence
    on the validation split), then the cheaper method; unless another method is significantly more accurate there.

    Why not simply the best validation top-1: calibration methods usually differ by a handful of images, which is
    sampling noise (3 of 9,000 validation images picked the recipe in an earlier quantize_fashion_mnist run, and
    the order reversed on the test split). Calibration exists to reproduce the fp32 model, and the divergence from
    its outputs uses every sample rather than the few whose label flips, so it ranks with far less noise.
    """
    rank = lambda m: (len(reports[m].nodes_in_float), reports[m].val_kl, CALIBRATION_ORDER.index(m))  # noqa: E731
    first = min(reports, key=rank)
    better = [m for m in reports if _significantly_more_accurate(reports[m], reports[first])]
    return min(better, key=lambda m: (-reports[m].val_top1, *rank(m))) if better else first


def _significantly_more_accurate(a: FallbackReport, b: FallbackReport) -> bool:
    if a.val_correct is None or b.val_correct is None or a.val_top1 <= b.val_top1:
        return False
    return mcnemar_exact(a.val_correct, b.val_correct)[2] < SIGNIFICANCE


def quantize_auto(fp32_onnx: Path, out_path: Path, recipe: QuantRecipe, calibration: np.ndarray,
                  val_x: np.ndarray, val_y: np.ndarray, budget: FallbackBudget) -> tuple[str, dict]:
    """Quantize (with fallback) once per calibration method and keep the pick_calibration winner.

    Returns the chosen method and, per method, its FallbackReport or the reason it failed."""
    reports, failures = {}, {}
    with tempfile.TemporaryDirectory(prefix="edgekd-calib-") as scratch:
        for method in progress(CALIBRATION_ORDER, desc=f"calibration methods ({recipe.name})", unit="method"):
            path = Path(scratch) / f"{method}.onnx"
            try:
                reports[method] = quantize_with_fallback(fp32_onnx, path, recipe, calibration, val_x, val_y, budget, method)
            except StageError as exc:
                failures[method] = str(exc)
        if not reports:
            raise StageError(f"quantize: no calibration method meets max_drop {budget.max_drop:g} for recipe "
                             f"'{recipe.name}': {' | '.join(f'{m}: {e}' for m, e in failures.items())}")
        chosen = pick_calibration(reports)
        shutil.copyfile(Path(scratch) / f"{chosen}.onnx", out_path)
    return chosen, {**reports, **failures}


def rank_sensitivity(full_int8: Path, fp32_logits: np.ndarray, x: np.ndarray, quantize, scratch: Path) -> list[dict]:
    """Quantized nodes, most sensitive first: the logits' mean squared error vs fp32 with that node alone in float.
    One quantization per node: the search before issue 34, kept for FallbackBudget.strategy "per-node" only."""
    base_error = _mse(logits_of(full_int8, x), fp32_logits)
    rows = []
    for node in progress(quantized_nodes(full_int8), desc="int8 sensitivity per node", unit="node"):
        probe = quantize(scratch / "probe.onnx", [node])
        error = _mse(logits_of(probe, x), fp32_logits)
        rows.append({"node": node, "mse_in_float": error, "mse_removed": base_error - error})
    return sorted(rows, key=lambda row: row["mse_in_float"])


def _with_fidelity(report: FallbackReport, fp32_logits: np.ndarray, int8_logits: np.ndarray, labels: np.ndarray) -> FallbackReport:
    if fp32_logits.ndim != 2 or labels.ndim != 1:  # not a classifier's logits: the outputs' error ranks calibrations
        report.val_kl = _mse(int8_logits, fp32_logits)
        return report
    report.val_kl = mean_kl(fp32_logits, int8_logits)
    report.val_correct = np.argmax(int8_logits, axis=1) == labels
    return report


def mean_kl(reference_logits: np.ndarray, logits: np.ndarray) -> float:
    """Mean over samples of KL(softmax(reference) || softmax(logits)), in nats."""
    from scipy.special import log_softmax  # late, as in _significantly_more_accurate

    ref = log_softmax(reference_logits.astype(np.float64), axis=1)
    return float(np.mean(np.sum(np.exp(ref) * (ref - log_softmax(logits.astype(np.float64), axis=1)), axis=1)))


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


def _give_up_message(recipe: QuantRecipe, report: FallbackReport, budget: FallbackBudget) -> str:
    last = report.tried[-1] if report.tried else {"nodes_in_float": [], "val_drop": report.int8_val_drop}
    kept = ", ".join(last["nodes_in_float"]) or "none"
    head = (f"quantize: int8 recipe '{recipe.name}' drops {report.int8_val_drop:.2f} > max_drop {budget.max_drop:g} on the "
            f"validation split" + "".join(f" ({m} calibration: {r['val_drop']:.2f})" for m, r in report.calibrations_tried.items())
            + "".join(f" (NNCF preset {p}: {r['val_drop']:.2f})" for p, r in report.presets_tried.items())
            + "".join(f" ({t}: {r['val_drop']:.2f})" for t, r in report.op_types_tried.items()))
    say = ADVICE[budget.advice]
    if report.stopped:
        return (f"{head}; the fallback search stopped at {say['max_seconds']} {budget.max_seconds:g} after "
                f"{report.evaluations} evaluation(s) with no candidate within the budget (last: {len(last['nodes_in_float'])} "
                f"nodes in float, drop {last['val_drop']:.2f}); raise {say['max_seconds']}, or try {say['calibration']}, "
                f"or {say['qat']}")
    if budget.max_nodes == 0:  # quantize.fallback false, or max_fallback_nodes 0: no node was kept in float
        return (f"{head}, and no node may stay in float ({say['none_in_float']}); {say['enable']} to keep the most "
                f"sensitive ones in float, try {say['calibration']}, or {say['qat']}")
    return (f"{head}; kept up to {len(last['nodes_in_float'])} most sensitive nodes in float ({kept}) and it still "
            f"drops {last['val_drop']:.2f}; raise {say['max_nodes']}, try {say['calibration']}, or {say['qat']}")
