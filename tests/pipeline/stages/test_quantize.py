"""The quantize stage under quantize.method: qat enforces the int8 accuracy budget like PTQ does."""
from __future__ import annotations

import pytest
import torch

from edgekd import api
from edgekd.core.errors import StageError
from edgekd.core.fileio import sha256_of

pytestmark = pytest.mark.slow


def _wreck_the_classifier(real_finetune):
    """Fine-tune for real, then rotate the last layer's output rows: class c is predicted as c+1, so the
    QAT model keeps agreeing with itself in ONNX but loses most of its validation accuracy."""

    def finetune(qat, *args, **kwargs):
        run = real_finetune(qat, *args, **kwargs)
        last = [m for m in qat.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.copy_(last.weight.roll(1, 0))
            last.bias.copy_(last.bias.roll(1, 0))
        return run

    return finetune


def test_qat_over_the_budget_stops_and_keeps_the_files_already_written(tiny_config, write_config, tmp_path, monkeypatch):
    tiny_config.update(targets=["x86-cpu"])
    tiny_config["distill"]["train"].update(epochs=15, lr=0.1)  # well above chance, so a wrecked model shows a drop
    # the rotated classifier's logits leave the output range the fake quantizer learned, which costs some
    # torch/ONNX agreement; this test is about the accuracy budget, checked after agreement
    tiny_config["export"] = {"min_top1_agreement": 0.5}
    tiny_config["quantize"].update(method="qat", max_drop=5.0, qat={"train": {"epochs": 1, "lr": 0.002, "amp": "off"}})
    run_dir = tmp_path / "run"
    api.run(write_config(tiny_config), out=run_dir, only=["teachers", "distill", "export", "quantize"], log=lambda _: None)
    written = {p: sha256_of(p) for p in run_dir.rglob("*.onnx")}
    assert any(p.parent.name == "04-quantize" for p in written)

    tiny_config["quantize"]["qat"]["train"]["lr"] = 0.001  # a changed config: the quantize stage runs again
    from edgekd.quant import qat_train  # the stage imports it when QAT runs (torch-free PTQ path)

    monkeypatch.setattr(qat_train, "finetune_qat", _wreck_the_classifier(qat_train.finetune_qat))
    with pytest.raises(StageError, match=r"drops \d+\.\d\d \(absolute\).* > budget 5 .*quantize\.qat\.train\.epochs"
                                         r".*quantize\.qat\.train\.lr.*quantize\.method: ptq"):
        api.run(write_config(tiny_config), out=run_dir, resume=True, only=["quantize"], log=lambda _: None)
    assert {p: sha256_of(p) for p in run_dir.rglob("*.onnx")} == written  # the earlier int8 model was not replaced
    assert not list(run_dir.rglob("*.tmp"))
