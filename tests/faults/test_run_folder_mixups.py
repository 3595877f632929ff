"""A run folder holds one run's models and nothing else (new-user trial): a rerun with fewer targets removes the
bundles it no longer builds, `edgekd bench` refuses bundles of two different models side by side, and --out into a
folder of other files is refused unless --force."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from .helpers import assert_one_line_error, invoke

torch = pytest.importorskip("torch")


def _digits_net(seed: int, path):
    """A small CNN fitted in a second on scikit-learn's digits (standardised), exported to ONNX: two seeds, two models."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(((digits.images / 16.0 - 0.3) / 0.4).astype(np.float32)[:, None])
    y = torch.from_numpy(digits.target.astype(np.int64))
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, 10))
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    torch.onnx.export(net.eval(), (x[:2],), str(path), input_names=["x"], output_names=["logits"], dynamo=False,
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
    return x.numpy(), y.numpy()


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    x, y = _digits_net(0, root / "a.onnx")
    _digits_net(1, root / "b.onnx")
    np.savez(root / "digits.npz", x=x, y=y)
    return root


def _ship(model, root, out, *extra):
    return invoke("ship", str(model), "--data", str(root / "digits.npz"), "--out", str(out), *extra)


def test_a_rerun_with_fewer_targets_removes_their_bundles_and_bench_refuses_another_models(two_models, tmp_path):
    run = tmp_path / "run"
    first = _ship(two_models / "a.onnx", two_models, run, "--targets", "x86-cpu,intel-cpu")
    assert first.exit_code == 0, first.output[-3000:]
    kept_aside = shutil.copytree(run / "bundle" / "intel-cpu", tmp_path / "a-intel-cpu")

    second = _ship(two_models / "b.onnx", two_models, run, "--targets", "x86-cpu", "--force")
    assert second.exit_code == 0, second.output[-3000:]
    assert sorted(p.name for p in (run / "bundle").iterdir()) == ["x86-cpu"]
    assert "bundle/intel-cpu: removed" in second.output

    # The first model's bundle put back beside the second's: two models, one reference, so bench refuses.
    shutil.copytree(kept_aside, run / "bundle" / "intel-cpu")
    assert_one_line_error(invoke("bench", str(run)), "built from another model than", "bench them separately")


def test_out_into_a_folder_of_other_files_needs_force(two_models, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_one_line_error(_ship(two_models / "a.onnx", two_models, out), f"{out}: not empty and holds no edgekd run",
                          "notes.txt", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing written, nothing lost
    forced = _ship(two_models / "a.onnx", two_models, out, "--force")
    assert forced.exit_code == 0, forced.output[-3000:]
    assert (out / "notes.txt").read_text() == "mine" and (out / "bundle" / "x86-cpu" / "manifest.json").is_file()


def test_force_never_replaces_a_users_file_of_a_name_the_run_writes(two_models, tmp_path):
    """Trial defect (session 11): the refusal promised --force would write the run "beside" the user's files, and
    --force then replaced their report.json and wrote into their bundle/ folder."""
    out = tmp_path / "results"
    (out / "bundle").mkdir(parents=True)
    (out / "report.json").write_text("keep")
    assert_one_line_error(_ship(two_models / "a.onnx", two_models, out, "--force"), "has bundle, report.json",
                          "which a run writes and would replace", "--out")
    assert (out / "report.json").read_text() == "keep" and not any((out / "bundle").iterdir())
