"""Which candidates the compile stage builds per target: the profile's precisions, the float ones
the backend has kernels for, and every int8 variant the quantize stage left (PTQ, QAT, fallback)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from edgekd.pipeline.layout import RunLayout  # noqa: E402
from edgekd.pipeline.stages.compile import candidate_sources  # noqa: E402
from edgekd.runtimes import load_profile  # noqa: E402


class _Manifest:
    def __init__(self, quantize: dict):
        self.quantize = quantize

    def metrics(self, stage: str) -> dict:
        return self.quantize if stage == "quantize" else {}


class _Ctx:
    """Just enough of RunContext for candidate_sources: the stage folders and the quantize metrics."""

    def __init__(self, root: Path, quantize: dict | None = None):
        self.layout = RunLayout(root)
        self.manifest = _Manifest(quantize or {"method": "ptq"})

    def stage_dir(self, stage: str) -> Path:
        return self.layout.stage_dir(stage)


def _names(ctx, target):
    return [(name, precision) for name, precision, _ in candidate_sources(ctx, load_profile(target))]


def test_ort_builds_fp32_and_int8_only(tmp_path):
    ctx = _Ctx(tmp_path)
    (ctx.stage_dir("quantize") / "student-int8-x86-vnni-u8s8.onnx").write_bytes(b"q")
    assert _names(ctx, "x86-cpu") == [("fp32", "fp32"), ("int8", "int8")]


def test_openvino_adds_bf16_and_only_the_quantize_stages_own_int8_model(tmp_path):
    ctx = _Ctx(tmp_path)
    quantize = ctx.stage_dir("quantize")
    for suffix in ("", "-qat", "-fallback"):  # files the quantize stage never writes are no candidates
        (quantize / f"student-int8-openvino-nncf{suffix}.onnx").write_bytes(b"q")
    assert _names(ctx, "intel-cpu") == [("fp32", "fp32"), ("bf16", "bf16"), ("int8", "int8")]
    sources = {name: path.name for name, _, path in candidate_sources(ctx, load_profile("intel-cpu"))}
    assert sources["int8"] == "student-int8-openvino-nncf.onnx"
    assert sources["bf16"] == "student-fp32.onnx"  # float candidates compile from the fp32 export


def test_tensorrt_keeps_the_profile_order_and_skips_missing_int8(tmp_path):
    assert _names(_Ctx(tmp_path), "jetson-orin") == [("fp16", "fp16"), ("fp32", "fp32")]


def test_main_int8_model_is_named_by_how_it_was_made(tmp_path):
    ctx = _Ctx(tmp_path, {"method": "qat", "recipes": {}})
    (ctx.stage_dir("quantize") / "student-int8-x86-vnni-u8s8.onnx").write_bytes(b"q")
    assert _names(ctx, "x86-cpu") == [("fp32", "fp32"), ("int8-qat", "int8")]
    ctx.manifest = _Manifest({"method": "ptq", "recipes": {"x86-vnni-u8s8": {"nodes_in_float": ["conv1"]}}})
    assert _names(ctx, "x86-cpu") == [("fp32", "fp32"), ("int8-fallback", "int8")]


def test_no_int8_candidate_when_this_run_did_not_quantize(tmp_path):
    """A --force rerun with quantize.method: none must not ship the int8 model an earlier run left in 04-quantize."""
    ctx = _Ctx(tmp_path, {"method": "none"})
    (ctx.stage_dir("quantize") / "student-int8-x86-vnni-u8s8.onnx").write_bytes(b"q")
    assert _names(ctx, "x86-cpu") == [("fp32", "fp32")]


def test_a_rerun_removes_the_candidate_folders_it_did_not_build_and_nothing_else(tmp_path):
    from edgekd.pipeline.stages.compile import remove_stale_candidates

    stage = tmp_path / "05-compile"
    for folder in ("x86-cpu/fp32", "x86-cpu/int8", "x86-cpu/int8-fallback", "x86-cpu/my-notes", "intel-cpu/fp32",
                   "intel-cpu/bf16", "old-board/int8", "old-board/my-notes", "dropped/fp32"):
        (stage / folder).mkdir(parents=True)
        (stage / folder / "model.onnx").write_bytes(b"m")
    (stage / ".progress-key").write_text("k")
    removed = remove_stale_candidates(stage, {"x86-cpu": {"fp32", "int8-fallback"}, "intel-cpu": {"fp32", "bf16"}})
    assert sorted(str(p.relative_to(stage)) for p in removed) == ["dropped/fp32", "old-board/int8", "x86-cpu/int8"]
    left = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    assert left == [".progress-key", "intel-cpu/bf16/model.onnx", "intel-cpu/fp32/model.onnx", "old-board/my-notes/model.onnx",
                    "x86-cpu/fp32/model.onnx", "x86-cpu/int8-fallback/model.onnx", "x86-cpu/my-notes/model.onnx"]
    assert not (stage / "dropped").exists()  # a target folder left empty goes too
