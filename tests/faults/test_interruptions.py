"""Nothing lost: killed, interrupted or failed runs keep what earlier stages made, and resume.

Training runs in a real subprocess, stopped by a real signal once the distill stage has written its
first per-epoch progress checkpoint, i.e. during a later epoch.
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.core.fileio import sha256_of
from edgekd.data import load_dataset
from edgekd.pipeline.config import load_config
from edgekd.train.models import build_model

from .helpers import REPO, TINY, assert_one_line_error, invoke, run_cli, subprocess_env, write_config

DISTILL_EPOCHS = 30
# A student that sleeps 20 ms per training step (never in eval mode, so export and evaluation are
# unaffected): distillation lasts a few seconds whatever the machine's load, so a signal sent after
# the first epoch's checkpoint lands mid-training, while costing the shared CPUs almost nothing.
SLOW_STUDENT = """
import time
from torch import nn


class SlowMLP(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        if self.training:
            time.sleep(0.02)
        return self.head(self.features(x))


def slow_mlp(num_classes):
    return SlowMLP(num_classes)
"""
LONG_DISTILL = {
    "data": {"source": "digits", "train_limit": 320, "test_limit": 200},
    "student": {"arch": "slowstudent.py:slow_mlp", "width": None},
    "distill": {"train": {"epochs": DISTILL_EPOCHS, "batch_size": 32, "lr": 0.05, "amp": "off"}},
}


def _long_distill_config(folder: Path) -> Path:
    (folder / "slowstudent.py").write_text(SLOW_STUDENT, encoding="utf-8")
    return write_config(folder, **LONG_DISTILL)


def _start(config: Path, out: Path) -> subprocess.Popen:
    # Ctrl-C as a terminal sends it: a suite started in the background by a shell without job control (`make test &`,
    # nohup) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt, so the child gets it back.
    return subprocess.Popen([sys.executable, "-m", "edgekd", "run", str(config), "--out", str(out)], cwd=REPO,
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if process.poll() is not None:
            raise AssertionError(f"run ended before {path.name} appeared:\n{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.02)


def _stop_during_distill(config: Path, run: Path, sig: signal.Signals) -> tuple[subprocess.CompletedProcess, int]:
    """Start a run, send `sig` once distillation has checkpointed an epoch; returns the result and that epoch."""
    process = _start(config, run)
    progress = run / "02-distill" / "distill.progress.pt"
    _wait_for(progress, process)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    epoch = int(torch.load(progress, map_location="cpu", weights_only=True)["epoch"]) if progress.is_file() else 0
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), epoch


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _outputs_intact(run: Path, stage: str) -> bool:
    entry = _manifest(run)["stages"][stage]
    return entry["status"] == "done" and all(sha256_of(run / o["path"]) == o["sha256"] for o in entry["outputs"])


def _student_top1(config: Path, run: Path) -> float:
    cfg = load_config(config)
    data = load_dataset(cfg.data, cfg.seed, config.parent)
    spec = cfg.student.model_copy(update={"checkpoint": str(run / "02-distill" / "student.pt")})
    student = build_model(spec, data.input_shape, data.num_classes, config.parent, where="student").eval()
    with torch.no_grad():
        predicted = student(torch.from_numpy(data.test.x)).argmax(1).numpy()
    return float((predicted == data.test.y).mean())


@pytest.mark.slow
def test_sigkill_during_distillation_then_resume_continues_from_the_checkpoint(tmp_path):
    config = _long_distill_config(tmp_path)
    run = tmp_path / "run"

    killed, epoch = _stop_during_distill(config, run, signal.SIGKILL)

    assert killed.returncode == -signal.SIGKILL
    assert 1 <= epoch < DISTILL_EPOCHS, "the kill must land mid-training"
    assert not (run / "02-distill" / "student.pt").exists()
    assert _outputs_intact(run, "teachers")
    teachers_before = _manifest(run)["stages"]["teachers"]
    # The killed run left a manifest, so the folder is protected: continuing needs --resume.
    assert_one_line_error(invoke("run", config, "--out", run), "--resume")

    resumed = run_cli("run", config, "--out", run, "--resume")

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "teachers] up to date, skipped" in resumed.stderr
    assert f"distill.progress.pt: resuming after epoch {epoch}" in resumed.stderr
    assert _manifest(run)["stages"]["teachers"] == teachers_before
    assert all(_outputs_intact(run, stage) for stage in ("teachers", "distill", "export", "quantize", "compile"))
    assert not list((run / "02-distill").glob("*.progress.pt")), "progress checkpoints are cleared once the stage is done"
    assert _student_top1(config, run) > 0.5  # digits, 10 classes: a trained student, not a broken one


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_during_distillation_stops_cleanly_with_the_resume_command(tmp_path, sig):
    config = _long_distill_config(tmp_path)
    run = tmp_path / "run"

    stopped, epoch = _stop_during_distill(config, run, sig)

    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("edgekd: interrupted;"), last
    assert f"Continue with: edgekd run {config} --out {run} --resume" in last
    # Trial defect (session 12): the run log ended "stopped: KeyboardInterrupt" without the way on.
    assert f"interrupted: finished stages are kept; continue with: edgekd run {config} --out {run} --resume" in \
        (run / "edgekd.log").read_text()
    manifest = _manifest(run)
    assert manifest["stages"]["distill"] == {"status": "failed", "reason": "interrupted"}
    assert _outputs_intact(run, "teachers")
    assert epoch >= 1 and (run / "02-distill" / "distill.progress.pt").is_file()


def _calibration_recipe(folder: Path, expected_sha256: str) -> Path:
    path = folder / "pinned.yaml"
    path.write_text(f"name: pinned\nsource: train\ncount: 32\nclass_balance: false\nexpected_sha256: '{expected_sha256}'\n",
                    encoding="utf-8")
    return path


def _copy_of_finished_run(tmp_path: Path, finished_run: Path) -> tuple[Path, Path]:
    run = shutil.copytree(finished_run, tmp_path / "run")
    return run, run / "02-distill" / "student.pt"


def _assert_untouched(run, before: dict, student, student_sha: str) -> None:
    """The student file and every stage up to quantize are as they were, on disk and on record."""
    after = _manifest(run)["stages"]
    assert sha256_of(student) == student_sha
    for stage in ("teachers", "distill", "export", "quantize"):
        assert after[stage] == before[stage]
        assert _outputs_intact(run, stage)


def test_failed_quantize_stage_leaves_the_student_and_its_record_intact(tmp_path, finished_run):
    run, student = _copy_of_finished_run(tmp_path, finished_run)
    before = _manifest(run)["stages"]
    student_sha = sha256_of(student)
    recipe = _calibration_recipe(tmp_path, "0" * 64)  # pins a calibration set that cannot match
    config = write_config(tmp_path, targets=["x86-cpu", "intel-cpu"], quantize={"calibration": str(recipe)})

    result = invoke("run", config, "--out", run, "--resume")

    message = assert_one_line_error(result, "calibration recipe 'pinned'", "the data changed")
    assert re.search(r"set sha256 [0-9a-f]{64} != expected_sha256 \S+;", message)  # whole: 12 characters looked equal
    # The earlier int8 model, made with the earlier recipe, is still there and still on record.
    _assert_untouched(run, before, student, student_sha)


def test_interrupted_quantize_stage_leaves_the_student_and_its_record_intact(tmp_path, finished_run, monkeypatch):
    run, student = _copy_of_finished_run(tmp_path, finished_run)
    before = _manifest(run)["stages"]
    student_sha = sha256_of(student)
    config = write_config(tmp_path, targets=["x86-cpu", "intel-cpu"], quantize={"calibration": "train-256"})

    def ctrl_c_while_writing(model_input, model_output, *args, **kwargs):
        Path(model_output).write_bytes(b"half an int8 model")  # onnxruntime writes its output in place
        raise KeyboardInterrupt

    import onnxruntime.quantization

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", ctrl_c_while_writing)
    result = invoke("run", config, "--out", run, "--resume")

    assert result.exit_code == 130, result.output[-3000:]
    assert "edgekd: interrupted;" in result.stderr and "--resume" in result.stderr
    # onnxruntime was writing to a temporary name: the earlier int8 model is untouched, its record kept.
    _assert_untouched(run, before, student, student_sha)
    assert not list(run.rglob("*.tmp"))


def test_changed_config_restarts_training_instead_of_resuming_stale_progress(tmp_path, finished_run):
    """A progress checkpoint belongs to the config that wrote it: a different student never loads it."""
    run, _ = _copy_of_finished_run(tmp_path, finished_run)
    stale = MLPProgress.write(run / "02-distill" / "distill.progress.pt")
    (run / "02-distill" / ".progress-key").write_text("some-other-key", encoding="utf-8")
    config = write_config(tmp_path, targets=["x86-cpu", "intel-cpu"], student={"arch": "mlp", "width": 12})

    result = invoke("run", config, "--out", run, "--resume")

    assert result.exit_code == 0, result.output[-3000:]
    assert "resuming" not in result.stderr
    assert not stale.exists()


class MLPProgress:
    @staticmethod
    def write(path: Path) -> Path:
        """A progress checkpoint of a width-8 MLP at its last epoch: resuming from it would skip all training."""
        from edgekd.train.models.zoo import MLP

        torch.save({"model": MLP(1, 10, 8, width=8).state_dict(), "optimizer": {}, "schedule": {},
                    "epoch": torch.tensor(1)}, path)
        return path


def test_two_runs_into_one_folder_at_once_are_refused(tmp_path):
    config = _long_distill_config(tmp_path)
    run = tmp_path / "run"
    process = _start(config, run)
    try:
        _wait_for(run / "manifest.json", process)
        second = invoke("run", config, "--out", run, "--resume")
        assert_one_line_error(second, str(run), "another edgekd run is writing into this folder")
    finally:
        process.kill()
        process.communicate()


@pytest.mark.slow
def test_two_runs_into_different_folders_at_once_do_not_interfere(tmp_path):
    """Both runs distill from the same teacher checkpoint, so they race to fill the same entry of one
    shared teacher-logit cache: the one place two runs could collide."""
    from edgekd.data import load_dataset
    from edgekd.data.config import DataConfig
    from edgekd.train.config import TrainConfig
    from edgekd.train.models.zoo import MLP
    from edgekd.train.trainer import cross_entropy_loss, train

    # A trained teacher: an untrained one is refused as no better than chance before anything uses it.
    data = load_dataset(DataConfig(**TINY["data"]), seed=TINY["seed"])
    torch.manual_seed(0)
    teacher = MLP(1, 10, 8, width=16)
    train(teacher, torch.from_numpy(data.train.x), torch.from_numpy(data.train.y),
          TrainConfig(epochs=10, lr=0.05, batch_size=32, amp="off"), cross_entropy_loss(), seed=0)
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    cache = tmp_path / "shared-cache"
    env = subprocess_env(EDGEKD_CACHE_DIR=str(cache))
    config = write_config(tmp_path, teachers=[{"arch": "mlp", "width": 16, "checkpoint": "teacher.pt"}])
    runs = [tmp_path / "a", tmp_path / "b"]
    processes = [subprocess.Popen([sys.executable, "-m", "edgekd", "run", str(config), "--out", str(out)], cwd=REPO,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for out in runs]
    results = [p.communicate(timeout=600) for p in processes]
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    for run in runs:
        assert all(_outputs_intact(run, stage) for stage in _manifest(run)["stages"])
        assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".staging-")]
    entries = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert len(entries) == 2 and {Path(e).suffix for e in entries} == {".npy", ".json"}, entries
    # One complete entry, whichever run renamed it into place last: readable, full-size, finite.
    logits = np.load(next(cache.rglob("*.npy")))
    assert logits.shape[1] == 10 and np.isfinite(logits.astype(np.float32)).all()
