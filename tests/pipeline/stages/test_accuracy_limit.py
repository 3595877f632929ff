"""One accuracy limit per target, in one place (pipeline.selection.accuracy_limit): the compile stage's candidate
selection and the quantize stage's int8 budget both use it, and it is never looser than the gate (issue 20, item 9)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("torch")

from edgekd.pipeline.config import PipelineConfig  # noqa: E402
from edgekd.pipeline.stages.compile import selection_rule  # noqa: E402
from edgekd.pipeline.stages.quantize import int8_budget  # noqa: E402
from edgekd.runtimes import load_profile  # noqa: E402
from edgekd.tasks.image import ImageClassification  # noqa: E402

BOARD = """name: my-board
backend: ort
precisions: [fp32, int8]
quantization: {name: x86-vnni-u8s8, activation_type: uint8, weight_type: int8}
gate: {max_drop: %s}
"""


def _ctx(tmp_path, gate: dict, targets=("x86-cpu",), quantize: dict | None = None):
    cfg = PipelineConfig.model_validate({"teachers": [{"arch": "mlp"}], "student": {"arch": "mlp"}, "targets": list(targets),
                                         "gate": gate, "quantize": quantize or {}})
    # the int8 budget is in the task's metric; no fp32 file yet, so every target builds with its own profile
    return SimpleNamespace(cfg=cfg, base_dir=tmp_path, task=ImageClassification(),
                           layout=SimpleNamespace(fp32_onnx=tmp_path / "not-exported-yet.onnx"))


def _verdict(ctx, target: str, drop: float) -> str | None:
    return selection_rule(ctx, load_profile(target, ctx.base_dir))({"val_drop": drop})


def test_a_looser_gate_lets_selection_ship_what_the_gate_passes(tmp_path):
    ctx = _ctx(tmp_path, {"max_drop": 2.0})
    assert int8_budget(ctx, "x86-vnni-u8s8") == 2.0  # was 1.0: the built-in profile's max_drop overruled the gate
    assert _verdict(ctx, "x86-cpu", 1.5) is None
    assert _verdict(ctx, "x86-cpu", 2.5) == "accuracy drop 2.50 > max_drop 2.0 (gate.max_drop)"


def test_a_stricter_gate_binds_selection_so_it_cannot_ship_what_the_gate_fails(tmp_path):
    ctx = _ctx(tmp_path, {"max_drop": 0.5})
    assert int8_budget(ctx, "x86-vnni-u8s8") == 0.5
    assert _verdict(ctx, "x86-cpu", 0.8) == "accuracy drop 0.80 > max_drop 0.5 (gate.max_drop)"  # was shipped: profile 1.0
    assert _verdict(ctx, "x86-cpu", 0.5) is None


def test_a_target_profile_can_only_make_the_limit_stricter(tmp_path):
    (tmp_path / "strict.yaml").write_text(BOARD % 0.5)
    (tmp_path / "loose.yaml").write_text(BOARD % 3.0)
    strict = _ctx(tmp_path, {"max_drop": 2.0}, targets=["strict.yaml"])
    assert _verdict(strict, "strict.yaml", 0.8) == ("accuracy drop 0.80 > max_drop 0.5 (target my-board's gate.max_drop, "
                                                    "stricter than gate.max_drop 2)")
    assert int8_budget(strict, "x86-vnni-u8s8") == 0.5
    loose = _ctx(tmp_path, {"max_drop": 1.0}, targets=["loose.yaml"])
    assert _verdict(loose, "loose.yaml", 1.5) == "accuracy drop 1.50 > max_drop 1.0 (gate.max_drop)"
    assert int8_budget(loose, "x86-vnni-u8s8") == 1.0


def test_the_int8_budget_is_the_strictest_limit_of_the_targets_sharing_the_recipe(tmp_path):
    (tmp_path / "strict.yaml").write_text(BOARD % 0.5)
    ctx = _ctx(tmp_path, {"max_drop": 2.0}, targets=["x86-cpu", "strict.yaml"])
    assert int8_budget(ctx, "x86-vnni-u8s8") == 0.5  # the int8 model must pass selection on both targets
    assert _verdict(ctx, "x86-cpu", 1.5) is None and _verdict(ctx, "strict.yaml", 1.5) is not None
    assert int8_budget(_ctx(tmp_path, {"max_drop": 2.0}, quantize={"max_drop": 3.0}), "x86-vnni-u8s8") == 3.0  # explicit
