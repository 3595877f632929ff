"""Every .pt edgekd writes has bytes that depend on its contents alone."""
from __future__ import annotations

import zipfile

import torch

from edgekd.train.models import save_checkpoint
from edgekd.train.trainer import _save_progress


def test_the_same_weights_saved_twice_have_the_same_bytes(tmp_path):
    """Trial defect (session 14): the same seed twice gave bitwise-equal tensors but a different sha256 of student.pt:
    torch.save given atomic_path's temporary path wrote its random name into the zip archive
    ('.student.pt.3mwt6ud5/data.pkl')."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    first, second = save_checkpoint(model, tmp_path / "a" / "student.pt"), save_checkpoint(model, tmp_path / "b" / "student.pt")
    assert first.read_bytes() == second.read_bytes()
    assert all(name.startswith("archive/") for name in zipfile.ZipFile(first).namelist())
    loaded = torch.load(first, weights_only=True)
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    for folder in ("a", "b"):  # the per-epoch progress checkpoints too
        _save_progress(tmp_path / folder / "distill.progress.pt", "tag", model, optimizer, schedule, 1)
    assert (tmp_path / "a" / "distill.progress.pt").read_bytes() == (tmp_path / "b" / "distill.progress.pt").read_bytes()
