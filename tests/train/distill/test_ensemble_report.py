"""The report's teacher row says it is the teachers' ensemble and lists each member's test top-1."""
from __future__ import annotations

import numpy as np

from edgekd.device.report.table import markdown, table_rows
from edgekd.pipeline.config import validate_config
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.manifest import RunManifest
from edgekd.pipeline.stages import bench
from tests.train.distill.conftest import tiny_distill_config


def test_the_teacher_row_is_labelled_an_ensemble_with_its_members(trained_teachers, monkeypatch):
    """Trial defect (session 14): the report's teacher row was the ensemble but labelled only "teacher (reference)", the
    members' accuracies were on the terminal only, and the manifest's teachers[].top1 (test) sat beside printed
    validation figures without naming its split."""
    config = validate_config(tiny_distill_config())
    manifest = RunManifest.open(trained_teachers, config.digest(), "tiny.yaml", "image-classification")
    ctx = RunContext(config, trained_teachers / "tiny.yaml", trained_teachers, manifest)
    stage = ctx.manifest.metrics("teachers")
    assert all(t["test_top1"] == t["top1"] for t in stage["teachers"]) and "test_top1" in stage["ensemble"]

    x, y = ctx.task.evaluation_set(ctx.dataset, 100)
    monkeypatch.setattr(bench, "fp32_student_logits", lambda _ctx, rows: np.zeros((len(rows), 10), np.float32))
    refs, _ = bench.references(ctx, x, y)
    members = refs["teacher"]["members"]
    assert [m["name"] for m in members] == ["teacher-0", "teacher-1"] and all(0 < m["top1"] <= 1 for m in members)

    report = {"run": "tiny", "references": refs, "rows": [], "gate": {"reference": "student_fp32"},
              "eval_set": {"samples": len(y), "sha256": "0" * 64}}
    assert table_rows(report)[1][0] == "teacher (reference, ensemble of 2)"
    said = markdown(report)
    assert ("`teacher` is the ensemble of 2 teachers; each one's top-1 on the same samples: "
            f"`teacher-0` {100 * members[0]['top1']:.2f}, `teacher-1` {100 * members[1]['top1']:.2f}.") in said


def test_the_teachers_are_run_once_for_the_ensemble_row_and_its_members(trained_teachers, monkeypatch):
    """Review (session 14): the bench stage loaded and ran every image teacher twice over the evaluation set (once for
    the ensemble row, once for its members' rows); the members' logits are now computed once and the ensemble made
    from them."""
    from edgekd.pipeline import run_models

    config = validate_config(tiny_distill_config())
    manifest = RunManifest.open(trained_teachers, config.digest(), "tiny.yaml", "image-classification")
    ctx = RunContext(config, trained_teachers / "tiny.yaml", trained_teachers, manifest)
    x, y = ctx.task.evaluation_set(ctx.dataset, 100)
    built = []
    real = run_models.build_teachers
    monkeypatch.setattr(run_models, "build_teachers", lambda c: built.append(1) or real(c))
    monkeypatch.setattr(bench, "fp32_student_logits", lambda _ctx, rows: np.zeros((len(rows), 10), np.float32))
    refs, _ = bench.references(ctx, x, y)
    assert len(built) == 1 and len(refs["teacher"]["members"]) == 2
