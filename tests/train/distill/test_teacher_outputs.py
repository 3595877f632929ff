"""A PyTorch teacher that outputs probabilities (a network ending in softmax) is taught from by their log."""
from __future__ import annotations

import pytest
import yaml

torch = pytest.importorskip("torch")

from edgekd.pipeline.config import load_config  # noqa: E402
from edgekd.pipeline.run_models import build_teachers  # noqa: E402
from edgekd.pipeline.runner import run_pipeline  # noqa: E402
from edgekd.train.distill.cache import weights_digest  # noqa: E402
from edgekd.train.distill.losses import ensemble_soft_targets  # noqa: E402
from edgekd.train.distill.teacher_outputs import are_probabilities, outputs_as_logits  # noqa: E402
from tests.train.distill.conftest import tiny_distill_config  # noqa: E402

SOFTMAX_NET = '''
import torch
from edgekd.train.models.zoo import ConvNet


class ProbNet(ConvNet):
    def forward(self, x):
        return torch.softmax(super().forward(x), dim=1)


def probnet(num_classes=10, width=8):
    return ProbNet(1, num_classes, (8, 8), width=width)
'''


class _Softmax(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.softmax(self.linear(x), dim=1)


def test_a_softmax_teacher_gives_the_log_of_its_probabilities():
    """Trial defect (session 14): a teacher ending in softmax had its probabilities taken as logits, so the softened
    targets were nearly uniform (student 82.0% against 95.5% from the same teacher's logits), with no word."""
    torch.manual_seed(0)
    model, x = _Softmax().eval(), torch.randn(64, 4)
    with torch.no_grad():
        probabilities = model(x)
    before = weights_digest(model)
    assert outputs_as_logits(model, x, "auto")
    with torch.no_grad():
        logits = model(x)
    assert torch.allclose(logits, torch.log(probabilities), atol=1e-6)
    assert torch.allclose(ensemble_soft_targets([logits], 1.0), probabilities, atol=1e-5)  # softmax(log p) = p
    assert weights_digest(model) != before  # outputs cached as probabilities are not read back as logits
    assert outputs_as_logits(model, x, "auto")  # once: not the log of the log
    with torch.no_grad():
        assert torch.allclose(model(x), logits)
    plain = torch.nn.Linear(4, 3).eval()
    assert not outputs_as_logits(plain, x, "auto") and not are_probabilities(plain(x).detach().numpy())
    kept = _Softmax().eval()
    assert not outputs_as_logits(kept, x, "logits")  # teachers[].outputs: logits takes them as they are
    assert are_probabilities(kept(x).detach().numpy())


def test_the_teachers_stage_says_it_and_distillation_reads_logits(tmp_path, capsys):
    """Trial defect (session 14): a softmax teacher (probnet.py) was distilled from as if it gave logits; the run now
    says it in one line, records it, and every later stage builds the teacher with log-probability outputs."""
    (tmp_path / "probnet.py").write_text(SOFTMAX_NET)
    cfg = tiny_distill_config()
    cfg["teachers"] = [{"arch": "probnet.py:probnet", "train": cfg["teachers"][0]["train"]}]
    path = tmp_path / "prob.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ctx = run_pipeline(load_config(path), path, tmp_path / "run", only=["teachers"], log=lambda _m: None)
    err = capsys.readouterr().err
    assert ("[teachers] teachers[0] (probnet.py:probnet): its outputs are probabilities (non-negative rows summing to 1 on "
            in err) and "set teachers[0].outputs: logits to take them as they are" in err
    assert ctx.manifest.metrics("teachers")["teachers"][0]["outputs"] == "probabilities: their log taken as logits"
    teacher = build_teachers(ctx)[0]
    with torch.no_grad():
        out = teacher(torch.from_numpy(ctx.dataset.val.x[:32]))
    assert out.max() <= 0 and torch.allclose(out.exp().sum(1), torch.ones(32), atol=1e-4)  # log-probabilities

    cfg["teachers"][0]["outputs"] = "logits"  # accepted for a PyTorch teacher, and then taken as given
    path.write_text(yaml.safe_dump(cfg))
    assert load_config(path).teachers[0].outputs == "logits"
