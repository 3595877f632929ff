"""The one exporter (edgekd/train/exporter.py): a spec's options reach torch.onnx.export as given and no others, an
exporter failure becomes one line, and the one check sees a model that drifted from its file."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgekd.core.errors import StageError  # noqa: E402
from edgekd.train.exporter import ExportSpec, compare_with_torch, export_options, write_onnx  # noqa: E402


class TwoHeads(torch.nn.Module):
    """Two inputs, two outputs: the shape of a family with several of each (text, the decoder)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, a, b):
        return self.linear(a + b), self.linear(a - b)


def _spec(**options) -> ExportSpec:
    torch.manual_seed(0)
    sample = (torch.randn(2, 4), torch.randn(2, 4))
    return ExportSpec(["a", "b"], ["sum", "difference"], sample, opset=17, dynamo=False, **options)


def test_only_the_options_a_spec_sets_are_passed_so_torch_defaults_stay_its_own():
    assert export_options(_spec()) == {"input_names": ["a", "b"], "output_names": ["sum", "difference"],
                                       "opset_version": 17, "dynamo": False}
    spec = _spec(dynamic_axes={"a": {0: "batch"}}, external_data=False, verbose=False)
    assert export_options(spec) == {"input_names": ["a", "b"], "output_names": ["sum", "difference"],
                                    "opset_version": 17, "dynamo": False, "dynamic_axes": {"a": {0: "batch"}},
                                    "external_data": False, "verbose": False}


def test_the_file_has_the_spec_names_opset_and_dynamic_axes(tmp_path):
    axes = {"a": {0: "batch"}, "b": {0: "batch"}, "sum": {0: "batch"}, "difference": {0: "batch"}}
    path = write_onnx(TwoHeads().eval(), _spec(dynamic_axes=axes, verbose=False), tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["a", "b"] and [o.name for o in proto.graph.output] == ["sum", "difference"]
    assert next(o.version for o in proto.opset_import if o.domain == "") == 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_an_exporter_failure_is_one_line_when_the_family_names_it(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, a, b):
            raise RuntimeError("no kernel for this\nsecond line")

    with pytest.raises(StageError, match=r"^family: export failed \(no kernel for this\)$"):
        write_onnx(Broken(), _spec(), tmp_path / "m.onnx", failure="family: export failed")
    with pytest.raises(RuntimeError, match="no kernel"):  # unnamed: as torch raised it
        write_onnx(Broken(), _spec(), tmp_path / "m.onnx")


def test_the_check_compares_every_output_of_every_feed_and_sees_a_drifted_model(tmp_path):
    model = TwoHeads().eval()
    axes = {name: {0: "batch"} for name in ("a", "b", "sum", "difference")}
    path = write_onnx(model, _spec(dynamic_axes=axes), tmp_path / "m.onnx")
    feeds = [(torch.randn(5, 4), torch.randn(5, 4)), (torch.randn(3, 4), torch.randn(3, 4))]
    same = compare_with_torch(model, path, feeds, ["a", "b"])
    assert same.max_abs_diff < 1e-5 and same.top1_agreement == 1.0 and same.samples == 8
    with torch.no_grad():
        model.linear.bias.add_(0.5)  # both outputs move by 0.5; argmax of each row stays
    drifted = compare_with_torch(model, path, feeds, ["a", "b"], threads=1, inter_threads=1)
    assert drifted.max_abs_diff == pytest.approx(0.5, abs=1e-5) and drifted.top1_agreement == 1.0
    with torch.no_grad():
        model.linear.bias.copy_(torch.tensor([0.0, 0.0, 1e3]))  # now column 2 wins in every row
    flipped = compare_with_torch(model, path, feeds, ["a", "b"])
    assert flipped.top1_agreement < 1.0 and np.isfinite(flipped.max_abs_diff)


DYNAMO_BANNER = ("Failed to export the model with torch.export. \x1b[96mThis is step 1/3\x1b[0m of exporting the model to "
                 "ONNX. Next steps:\n- Modify the model code for `torch.export.export` to succeed.\n")


@pytest.mark.parametrize("message, cause, said", [
    (DYNAMO_BANNER + "\n## Exception summary\n\n<class 'torch.fx.experimental.symbolic_shapes.GuardOnDataDependentSymNode'>"
     ": Could not guard on data-dependent expression Eq(u0, 1)\n\nmore\n\n(Refer to the full stack trace above)", None,
     "GuardOnDataDependentSymNode: Could not guard on data-dependent expression Eq(u0, 1)"),
    (DYNAMO_BANNER, ValueError("\x1b[1mbad shape\x1b[0m\ndetail"), "ValueError: bad shape"),
])
def test_a_dynamo_export_failure_says_its_cause_not_the_banner(monkeypatch, tmp_path, message, cause, said):
    """Trial defect (session 14): a failed dynamo export said only torch's banner ("Failed to export the model with
    torch.export. \\x1b[96mThis is step 1/3\\x1b[0m ... Next steps:"), colour codes included, never why it failed. It
    now says the cause: the exception summary's first line, or the wrapped exception's, without colours."""
    def export(*_args, **_kwargs):
        error = RuntimeError(message)
        raise error from cause

    monkeypatch.setattr(torch.onnx, "export", export)
    with pytest.raises(StageError) as caught:
        write_onnx(torch.nn.Linear(2, 2), _spec(), tmp_path / "m.onnx", failure="export: torch.onnx.export failed")
    assert str(caught.value) == f"export: torch.onnx.export failed ({said})"
