"""A student given as a checkpoint is measured before training, and a run that takes it clearly under that is said."""
from __future__ import annotations

import shutil

import pytest
import yaml

from edgekd.pipeline.config import load_config
from edgekd.pipeline.records import StudentRecord, read_record
from edgekd.pipeline.runner import run_pipeline
from edgekd.pipeline.stages.bench import baseline_warnings
from tests.train.distill.conftest import tiny_distill_config


def _distill(tmp_path, teachers_run, name, **student):
    cfg = tiny_distill_config(cache_dir=str(tmp_path / "cache"))
    cfg["student"].update(student)
    if student.get("checkpoint"):
        cfg["distill"]["train"]["lr"] = 5.0  # the trial's learning rate: it wrecks a trained student
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    shutil.copytree(teachers_run, tmp_path / name)
    return run_pipeline(load_config(path), path, tmp_path / name, only=["distill"], force=True, log=lambda _m: None)


def test_a_student_trained_under_its_checkpoint_is_said(tmp_path, trained_teachers, capsys):
    """Trial defect (session 14): fine-tuning a 95.5% student.checkpoint with distill.train.lr 5.0 ended at 10%; the
    checkpoint's own accuracy was nowhere, and the report advised training longer. It is now measured before training,
    recorded in the distill stage's metrics, and a student clearly under it is warned of, advising a lower lr."""
    trained = _distill(tmp_path, trained_teachers, "first")
    checkpoint = tmp_path / "student.pt"
    shutil.copy(trained.layout.student_checkpoint, checkpoint)
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"^student: the student ended \d+\.\d points under its checkpoint's \d+\.\d% "
                                         r"\(validation top-1 .*\): lower distill\.train\.lr$"):
        ctx = _distill(tmp_path, trained_teachers, "tuned", checkpoint=str(checkpoint))
    metrics = ctx.manifest.metrics("distill")
    assert metrics["checkpoint"]["val_top1"] == trained.manifest.metrics("distill")["val_top1"]  # where it started
    assert metrics["checkpoint"]["val_top1"] > metrics["val_top1"] + 0.2
    assert f"[distill] student.checkpoint '{checkpoint}': validation top-1" in capsys.readouterr().err
    said = read_record(ctx.manifest, StudentRecord).student_warnings
    assert len(said) == 1 and said[0].endswith("lower distill.train.lr")  # the bench stage puts it in the report
    assert "checkpoint" not in trained.manifest.metrics("distill")  # no checkpoint: nothing measured, nothing said


def test_the_chance_advice_says_lower_lr_when_training_fell_from_the_checkpoint():
    """Trial defect (session 14): the student trained from 95.5% down to 10% was told to "train the student longer
    (distill.train.epochs)", which would take it further down."""
    refs = {"student_fp32": {"top1": 0.10}, "teacher": {"top1": 0.987}}
    said = baseline_warnings(refs, 300, 0.117, fell=True)
    assert said and all("lower distill.train.lr" in s and "longer" not in s for s in said)
    assert all("train the student longer (distill.train.epochs)" in s for s in baseline_warnings(refs, 300, 0.117))


def test_zero_epochs_without_a_checkpoint_is_refused(tmp_path):
    """Trial defect (session 14): distill.train.epochs 0 with no student.checkpoint shipped a random student (exit 0,
    gate PASS at chance); it is refused at the config check, in one line saying what to give."""
    from edgekd.core.errors import ConfigError
    from edgekd.pipeline.config import validate_config
    from edgekd.pipeline.runner import preflight

    def check(student=None, **distill):
        cfg = tiny_distill_config(**distill)
        cfg["distill"]["train"]["epochs"] = 0
        cfg["student"].update(student or {})
        preflight(validate_config(cfg), tmp_path)

    with pytest.raises(ConfigError, match=r"^distill\.train\.epochs 0 trains nothing and student\.checkpoint is not given: "
                                          r"the student would be untrained; give epochs >= 1 or a checkpoint$"):
        check()
    check(student={"checkpoint": "student.pt"})  # evaluated (and shipped) as trained elsewhere
    check(finetune_epochs=1)  # the fine-tune phase trains it on labels
